"""``grant_type=authorization_code`` of ``POST /oauth/token``: client authentication, the code
spent once, and the answer (access token, ID token).

Client authentication (RFC 6749 §2.3.1): a confidential client sends its secret either in
``Authorization: Basic`` (``client_secret_basic``) or as ``client_secret`` in the form
(``client_secret_post``), never both; a public client sends ``client_id`` and no secret, and
the PKCE verifier is its proof. Every failure is ``invalid_client`` (401) without saying which
part was wrong.

Built-in clients (an org instance, the CLI: :mod:`control_plane.oidc.builtin_clients`) get
the answers of :mod:`control_plane.oidc.builtin_grant` instead; an org instance authenticates
with its instance credential.

No refresh token is issued to a registered client: the refresh-token table is the control
plane's own sign-in family (its refresh mints control-plane API tokens), and a third-party
client must never hold one of those. A client runs the flow again (the browser's
control-plane session makes that a redirect with no prompt for first-party clients).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Final
from urllib.parse import unquote_plus

from litestar import Request
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.client_ip import client_ip
from control_plane.db.models import AuthorizationCode, OAuthClient, RefreshToken, User
from control_plane.oidc.builtin_clients import find_client
from control_plane.oidc.builtin_grant import builtin_tokens, instance_secret_ok, is_builtin
from control_plane.oidc.clients import is_public, secret_ok
from control_plane.oidc.codes import CodeRefused, note_issued, spend_code
from control_plane.runtime import Runtime
from control_plane.signing.jws import sign
from control_plane.signing.keys import ID_TOKEN_ALG
from control_plane.tokens.discovery import AUTHORIZATION_CODE_GRANT as AUTHORIZATION_CODE_GRANT
from control_plane.tokens.grants import OAuthError, Params

#: ``token_use`` of an access token bought by a client: good for userinfo only, never for the
#: control-plane API (``control_plane.auth.verify_access_token`` wants ``access``).
CLIENT_ACCESS: Final = "client_access"
ID_TOKEN_TYP: Final = "JWT"
BAD_CLIENT: Final = "Client authentication failed."


def _basic(header: str) -> tuple[str, str] | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    return (unquote_plus(client_id), unquote_plus(secret)) if sep else None


def _refused(basic: bool) -> OAuthError:
    headers = {"WWW-Authenticate": 'Basic realm="orgplane"'} if basic else None
    return OAuthError("invalid_client", BAD_CLIENT, status=401, headers=headers)


async def authenticate_client(
    request: Request[Any, Any, Any], db: AsyncSession, params: Params
) -> OAuthClient:
    """The client this request authenticates as, or ``invalid_client``."""
    header = request.headers.get("authorization")
    basic = _basic(header) if header is not None else None
    if header is not None and basic is None:
        raise _refused(True)
    if basic is not None and params.get("client_secret"):
        raise OAuthError("invalid_request", "Use one client authentication method, not two.")
    client_id, secret = basic or (params.get("client_id") or "", params.get("client_secret"))
    if basic is not None and params.get("client_id") not in (None, client_id):
        raise _refused(True)
    runtime: Runtime = request.app.state.runtime
    client = await find_client(runtime.settings, db, client_id)
    if client is None:
        raise _refused(basic is not None)
    if is_public(client):
        if secret:
            raise _refused(basic is not None)
    elif is_builtin(client):  # an org instance: its heartbeat credential
        if not await instance_secret_ok(db, client, secret):
            raise _refused(basic is not None)
    elif not secret_ok(client, secret):
        raise _refused(basic is not None)
    return client


async def _auth_time(db: AsyncSession, row: AuthorizationCode) -> int:
    """When the user signed in: the start of the sign-in's refresh family, else the code's."""
    started = None
    if row.session_id:
        started = (
            await db.exec(
                select(func.min(RefreshToken.created_at)).where(
                    col(RefreshToken.family_id) == row.session_id
                )
            )
        ).first()
    when = started or row.auth_time
    return int(when.timestamp())


async def _tokens(
    runtime: Runtime, db: AsyncSession, row: AuthorizationCode, user: User
) -> dict[str, Any]:
    key = await runtime.keyring.signing_key(db)
    id_key = await runtime.keyring.signing_key(db, alg=ID_TOKEN_ALG)
    ttl = runtime.settings.tokens.access_token_ttl
    amr = row.amr.split() or ["pwd"]
    access, access_claims = sign(
        {
            "iss": runtime.issuer,
            "aud": runtime.audience,
            "sub": user.id,
            "client_id": row.client_id,
            "scope": row.scope,
            "token_use": CLIENT_ACCESS,
            "sv": user.session_version,
            "amr": amr,
        },
        key,
        ttl=ttl,
    )
    id_claims: dict[str, Any] = {
        "iss": runtime.issuer,
        "sub": user.id,
        "aud": row.client_id,
        "azp": row.client_id,
        "auth_time": await _auth_time(db, row),
        "amr": amr,
    }
    if row.nonce:
        id_claims["nonce"] = row.nonce
    id_token, _ = sign(id_claims, id_key, ttl=ttl, typ=ID_TOKEN_TYP)
    await note_issued(db, row, jti=access_claims["jti"], exp=access_claims["exp"])
    return {
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": ttl,
        "scope": row.scope,
        "id_token": id_token,
    }


async def authorization_code_grant(
    request: Request[Any, Any, Any], runtime: Runtime, db: AsyncSession, params: Params
) -> dict[str, Any]:
    """Authenticate the client, spend the code, answer the tokens (OAuth 2.1 §4.1.3)."""
    client = await authenticate_client(request, db, params)
    # Before the code is spent: creating the key (once, if registration did not) commits.
    await runtime.keyring.ensure_id_token_key(db)
    try:
        row = await spend_code(
            runtime,
            db,
            presented=params.require("code"),
            client=client,
            redirect_uri=params.get("redirect_uri"),
            verifier=params.get("code_verifier"),
        )
    except CodeRefused:
        raise OAuthError(
            "invalid_grant",
            "The code is invalid, expired or used, or the redirect URI or code verifier does "
            "not match it.",
        ) from None
    user = await db.get(User, row.user_id)
    if user is None or user.disabled or user.session_version != row.session_version:
        # Disabled, or the password changed (every session ended) since the approval.
        await db.commit()  # the code stays spent
        raise OAuthError("invalid_grant", "The user of this code cannot sign in.")
    if is_builtin(client):
        auth_time = await _auth_time(db, row)
        return await builtin_tokens(
            runtime, db, row, user, auth_time=auth_time, ip=client_ip(request)
        )
    return await _tokens(runtime, db, row, user)
