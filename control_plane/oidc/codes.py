"""Authorization codes: issued to a signed-in user for one client, spent once.

A code is ``occ_`` and 43 URL-safe characters, stored as a SHA-256 hash, valid for
:data:`CODE_TTL` seconds, and bound to the client, the exact redirect URI and the PKCE
challenge (S256 only; OAuth 2.1 §4.1.1). Spending is a conditional ``UPDATE ... WHERE used_at
IS NULL`` whose row count decides, so of two racing redemptions exactly one wins. A code that
comes back after it was spent is a replay (RFC 6749 §4.1.2: the server "SHOULD revoke all
tokens previously issued based on that authorization code"): the access token it bought is
denied until its expiry (an org token bought by an org instance is also put on the org's
revocation list, which its instances follow), and the replay is audited.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.audit_trail import record
from control_plane.db.models import AuthorizationCode, OAuthClient, User, utcnow
from control_plane.oidc.builtin_clients import instance_org_id
from control_plane.runtime import Runtime
from control_plane.security.secrets import new_secret
from control_plane.signing.revocation import deny_access_token
from control_plane.tokens.org_revocation import publish_revocation
from orgplane_wire.secret_box import hash_secret

CODE_PREFIX: Final = "occ"
CODE_TTL: Final = 60
#: RFC 7636 §4.1: 43 to 128 characters of the unreserved set.
VERIFIER: Final = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
#: An S256 challenge: base64url of a SHA-256 digest, no padding.
CHALLENGE: Final = re.compile(r"[A-Za-z0-9\-_]{43}")


def s256(verifier: str) -> str:
    """The S256 challenge of ``verifier`` (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def verifier_matches(verifier: str | None, challenge: str) -> bool:
    """Whether ``verifier`` is well formed and hashes to ``challenge`` (constant-time)."""
    if verifier is None or not VERIFIER.fullmatch(verifier):
        return False
    return hmac.compare_digest(s256(verifier), challenge)


@dataclass(frozen=True)
class Grant:
    """What the user approved, to be bound into a code."""

    client_id: str
    redirect_uri: str
    scope: str
    nonce: str
    code_challenge: str
    session_id: str
    amr: str
    auth_time: datetime


async def issue_code(db: AsyncSession, *, user: User, grant: Grant) -> str:
    """A new code for ``grant``; commits."""
    value = new_secret(CODE_PREFIX)
    now = utcnow()
    db.add(
        AuthorizationCode(
            code_hash=hash_secret(value),
            client_id=grant.client_id,
            user_id=user.id,
            redirect_uri=grant.redirect_uri,
            scope=grant.scope,
            nonce=grant.nonce,
            code_challenge=grant.code_challenge,
            session_id=grant.session_id,
            amr=grant.amr,
            session_version=user.session_version,
            auth_time=grant.auth_time,
            created_at=now,
            expires_at=now + timedelta(seconds=CODE_TTL),
        )
    )
    await db.commit()
    return value


class CodeRefused(Exception):
    """The code is unknown, expired, already used, or bound to something else."""


async def spend_code(
    runtime: Runtime,
    db: AsyncSession,
    *,
    presented: str,
    client: OAuthClient,
    redirect_uri: str | None,
    verifier: str | None,
) -> AuthorizationCode:
    """Spend ``presented`` for ``client`` and answer its row, or raise :class:`CodeRefused`.
    On success the spend is not committed yet: :func:`note_issued` commits it together with
    the access token it bought, so a replay racing the redemption finds that token to revoke.

    The code is spent before its bindings are checked: a code presented with the wrong client,
    redirect URI or verifier is burnt too, so whoever stole it gets one try, not many.
    """
    if not presented.startswith(CODE_PREFIX + "_") or len(presented) > 100:
        raise CodeRefused("not an authorization code")
    digest = hash_secret(presented)
    now = utcnow()
    spent = await db.exec(
        update(AuthorizationCode)
        .where(
            col(AuthorizationCode.code_hash) == digest,
            col(AuthorizationCode.used_at).is_(None),
            col(AuthorizationCode.expires_at) > now,
        )
        .values(used_at=now)
        .returning(col(AuthorizationCode.id))
    )
    won = spent.first()
    if won is None:
        await _refuse_replay(runtime, db, digest)
        raise CodeRefused("code invalid, expired or already used")
    row = await db.get(AuthorizationCode, won[0])
    assert row is not None
    bound = (
        row.client_id == client.id
        and redirect_uri == row.redirect_uri
        and verifier_matches(verifier, row.code_challenge)
    )
    if not bound:
        await db.commit()
        raise CodeRefused("code bound to another client, redirect URI or PKCE challenge")
    return row


async def _refuse_replay(runtime: Runtime, db: AsyncSession, digest: str) -> None:
    """A spent code came back: deny the access token it bought, and audit."""
    row = (
        await db.exec(select(AuthorizationCode).where(col(AuthorizationCode.code_hash) == digest))
    ).first()
    if row is None or row.used_at is None:
        await db.rollback()
        return
    if row.issued_jti:
        claims = {"jti": row.issued_jti, "exp": row.issued_exp}
        await deny_access_token(runtime.revoked, claims)
        org_id = instance_org_id(row.client_id)
        if org_id is not None:  # an org token: the org's instances refuse it too
            await publish_revocation(runtime, org_ids=[org_id], field=f"jti:{row.issued_jti}")
    record(
        db,
        action="oauth.code_replay",
        outcome="failure",
        target_type="oauth_client",
        target_id=row.client_id,
        user_id=row.user_id,
    )
    await db.commit()


async def note_issued(db: AsyncSession, row: AuthorizationCode, *, jti: str, exp: int) -> None:
    """Remember which access token ``row`` bought (for revocation on replay) and commit the
    spend with it."""
    await db.exec(
        update(AuthorizationCode)
        .where(col(AuthorizationCode.id) == row.id)
        .values(issued_jti=jti, issued_exp=exp)
    )
    await db.commit()
