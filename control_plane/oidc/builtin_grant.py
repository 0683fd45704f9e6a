"""What the token endpoint answers the built-in clients (:mod:`control_plane.oidc.builtin_clients`)
for a spent authorization code.

* An **org instance** gets an org token for its own org, minted by the RFC 8693 exchange from
  an access token of the code's sign-in (never returned to anyone): the exchange's rules apply
  unchanged, so a user who is not a member, an org that is suspended or pending deletion, an
  MFA requirement the sign-in does not meet, or a staff member without a reason is refused
  (``invalid_target`` and the like), and the code stays spent. With it comes an ID token whose
  ``aud`` is the instance's client id and which carries the user's email and name (the scopes
  an instance client holds), so the instance needs no userinfo call.
* The **CLI** gets what a password login answers: an access token and a refresh token starting
  a new sign-in family with the code's ``amr``, and an ID token.
"""

from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.db.models import AuthorizationCode, OAuthClient, User
from control_plane.instances.heartbeat import authenticate_instance, credential_org
from control_plane.oidc.builtin_clients import instance_org_id, is_cli
from control_plane.oidc.codes import note_issued
from control_plane.runtime import Runtime
from control_plane.signing.jws import sign
from control_plane.signing.keys import ID_TOKEN_ALG
from control_plane.tokens import support_open
from control_plane.tokens.access import PASSWORD_ONLY, issue_access_token, login_tokens
from control_plane.tokens.exchange import ExchangeRequest, exchange_token
from control_plane.tokens.grants import ACCESS_TOKEN_TYPE, OAuthError
from orgplane_wire.problems import Unauthenticated

ID_TOKEN_TYP = "JWT"


def is_builtin(client: OAuthClient) -> bool:
    """The client is an org instance or the CLI."""
    return is_cli(client) or instance_org_id(client.id) is not None


async def instance_secret_ok(db: AsyncSession, client: OAuthClient, secret: str | None) -> bool:
    """Whether ``secret`` is the current credential of the instance ``client`` stands for."""
    org_id = instance_org_id(client.id)
    if not secret or org_id is None or credential_org(secret) != org_id:
        return False
    try:
        await authenticate_instance(db, secret)
    except Unauthenticated:
        return False
    return True


async def id_token(
    runtime: Runtime,
    db: AsyncSession,
    row: AuthorizationCode,
    user: User,
    *,
    auth_time: int,
    claims: bool = False,
) -> str:
    """An ID token for ``row``'s client; with ``claims``, the user's email and name as the
    code's scopes release them."""
    id_key = await runtime.keyring.signing_key(db, alg=ID_TOKEN_ALG)
    body: dict[str, Any] = {
        "iss": runtime.issuer,
        "sub": user.id,
        "aud": row.client_id,
        "azp": row.client_id,
        "auth_time": auth_time,
        "amr": row.amr.split() or ["pwd"],
    }
    if claims:
        scopes = set(row.scope.split())  # as userinfo releases them
        if "email" in scopes:
            body["email"] = user.email
            body["email_verified"] = user.email_verified_at is not None
        if "profile" in scopes and user.name:
            body["name"] = user.name
    if row.nonce:
        body["nonce"] = row.nonce
    token, _ = sign(body, id_key, ttl=runtime.settings.tokens.access_token_ttl, typ=ID_TOKEN_TYP)
    return token


async def builtin_tokens(
    runtime: Runtime,
    db: AsyncSession,
    row: AuthorizationCode,
    user: User,
    *,
    auth_time: int,
    ip: str,
) -> dict[str, Any]:
    """The token answer for a built-in client's spent code (see the module docstring)."""
    amr = tuple(row.amr.split()) or PASSWORD_ONLY
    token_id = await id_token(runtime, db, row, user, auth_time=auth_time, claims=True)
    org_id = instance_org_id(row.client_id)
    if org_id is None:  # the CLI: a new sign-in, as a password login starts one
        pair = await login_tokens(runtime, db, user, amr=amr)
        return {
            "access_token": pair.access_token,
            "token_type": "Bearer",
            "expires_in": pair.expires_in,
            "refresh_token": pair.refresh_token,
            "scope": row.scope,
            "id_token": token_id,
        }
    subject = await issue_access_token(
        runtime, db, user, session_id=row.session_id or None, amr=amr
    )
    # A staff member's "Open" left its checked reason (support access); a member's left none.
    reason = await support_open.take(runtime.support_open, user_id=user.id, org_id=org_id)
    exchange = ExchangeRequest(
        subject_token=subject,
        subject_token_type=ACCESS_TOKEN_TYPE,
        audience=(f"org:{org_id}",),
        reason=reason,
        ip=ip,
    )
    try:
        issued = await exchange_token(runtime, db, request=exchange)
    except OAuthError:
        await db.commit()  # the code stays spent
        raise
    await note_issued(db, row, jti=issued.claims["jti"], exp=issued.claims["exp"])
    return {
        "access_token": issued.access_token,
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
        "scope": issued.scope,
        "id_token": token_id,
    }
