"""Personal access tokens: long-lived, named, narrowed secrets for scripts and CI.

A token is ``opat_`` and 43 URL-safe characters (32 random bytes), so secret scanners can
recognise it. Only its SHA-256 hash is stored. A slow password hash (scrypt, as for passwords)
would add nothing: a slow hash protects a low-entropy secret from guessing, and 256 random bits
cannot be guessed however fast the hash is; a fast hash keeps the lookup one indexed equality.

What a token can do (docs/identity.md, docs/tokens.md):

* It is a **subject token** of the RFC 8693 exchange only: a script exchanges it for an org
  token, limited to the token's orgs and to its scopes intersected with the user's role in the
  org at that moment, for orgs whose features include ``api_access``. It is not a Bearer token
  of the control-plane API, and it cannot enter an org as staff.
* It **ends** when revoked, when it expires (expiry is required, at most
  ``ORGPLANE_PERSONAL_TOKEN_MAX_DAYS``), and with every other session of the user: a password
  change, a password reset and an admin disabling the account revoke it
  (:func:`control_plane.tokens.access.revoke_user_tokens`).
* It **enters an org that requires MFA** only if it was made in a session signed in with a
  second factor (it keeps that session's ``amr``): the person proved both factors when making
  it, as for any session; a token made before turning MFA on, or from a password-only session,
  does not (:mod:`control_plane.tokens.mfa_gate`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.db.models import PersonalToken, User, utcnow
from control_plane.orgs.access import caller_roles
from control_plane.security.secrets import new_secret
from control_plane.tokens.grants import OAuthError
from orgplane_wire.contract import ROLE_SCOPES
from orgplane_wire.problems import BadRequest, Conflict, NotFound
from orgplane_wire.secret_box import hash_secret

PREFIX: Final = "opat"
#: The scopes a token may name: those of the highest role.
KNOWN_SCOPES: Final = tuple(dict.fromkeys(s for scopes in ROLE_SCOPES.values() for s in scopes))
#: Unrevoked tokens one user may hold at once (expired ones count until revoked).
MAX_TOKENS_PER_USER: Final = 50
#: ``last_used_at`` is written at most this often per token, so a busy script does not turn
#: every exchange into a write.
LAST_USED_GRANULARITY: Final = timedelta(minutes=1)
ALL_ORGS: Final = "all"
#: The plan feature an org needs for personal access tokens to enter it.
API_ACCESS: Final = "api_access"
NOT_FOUND: Final = "No such personal access token."


def looks_like_personal_token(value: str) -> bool:
    """The shape of a personal access token (cheap check before any lookup)."""
    return value.startswith(PREFIX + "_") and 40 <= len(value) <= 100


def _checked_scopes(scopes: list[str]) -> list[str]:
    for index, scope in enumerate(scopes):
        if scope not in KNOWN_SCOPES:
            raise BadRequest(
                f"Unknown scope {scope!r}; choose among: {' '.join(KNOWN_SCOPES)}.",
                code="unknown_scope",
                field=f"scopes[{index}]",
            )
    return [s for s in KNOWN_SCOPES if s in scopes]


async def _checked_orgs(db: AsyncSession, user: User, orgs: list[str]) -> list[str]:
    """``orgs`` (ids) if the user has a role in each; one answer for "no such org" and "not
    yours", as the exchange gives."""
    roles = await caller_roles(db, user)
    for index, org_id in enumerate(orgs):
        if org_id not in roles:
            raise BadRequest(
                "No such org, or you are not a member of it.",
                code="unknown_org",
                field=f"orgs[{index}]",
            )
    return list(dict.fromkeys(orgs))


async def create_personal_token(
    db: AsyncSession,
    *,
    user: User,
    name: str,
    orgs: list[str] | str,
    scopes: list[str],
    expires_in_days: int,
    max_days: int,
    amr: str = "pwd",
) -> tuple[PersonalToken, str]:
    """A new token row (added, not committed) and the secret, which is never stored; ``amr``
    is how the session making it was authenticated (it decides MFA-requiring orgs)."""
    if not name.strip() or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise BadRequest(
            "Give the token a name, without control characters.", code="invalid_name", field="name"
        )
    if expires_in_days > max_days:
        raise BadRequest(
            f"A personal access token lives at most {max_days} days.",
            code="expiry_too_long",
            field="expires_in_days",
        )
    checked_scopes = _checked_scopes(scopes)
    all_orgs = orgs == ALL_ORGS
    org_ids = [] if isinstance(orgs, str) else await _checked_orgs(db, user, orgs)
    held = await db.exec(
        select(func.count())
        .select_from(PersonalToken)
        .where(col(PersonalToken.user_id) == user.id, col(PersonalToken.revoked_at).is_(None))
    )
    if held.one() >= MAX_TOKENS_PER_USER:
        raise Conflict(
            f"You hold {MAX_TOKENS_PER_USER} personal access tokens; revoke one first.",
            code="too_many_tokens",
        )
    secret = new_secret(PREFIX)
    now = utcnow()
    row = PersonalToken(
        user_id=user.id,
        name=name.strip(),
        token_hash=hash_secret(secret),
        scopes=checked_scopes,
        all_orgs=all_orgs,
        org_ids=org_ids,
        created_at=now,
        expires_at=now + timedelta(days=expires_in_days),
        amr=amr,
    )
    db.add(row)
    return row, secret


async def list_personal_tokens(db: AsyncSession, user: User) -> list[PersonalToken]:
    """The user's unrevoked tokens (expired ones too), newest first."""
    query = (
        select(PersonalToken)
        .where(col(PersonalToken.user_id) == user.id, col(PersonalToken.revoked_at).is_(None))
        .order_by(col(PersonalToken.created_at).desc(), col(PersonalToken.id))
    )
    return list((await db.exec(query)).all())


async def revoke_personal_token(db: AsyncSession, user: User, token_id: str) -> PersonalToken:
    """Revoke one of the user's own tokens; 404 for another user's, a revoked or an unknown
    one (one answer: ids of other users' tokens are not confirmed)."""
    row = await db.get(PersonalToken, token_id) if len(token_id) == 32 else None
    if row is None or row.user_id != user.id or row.revoked_at is not None:
        raise NotFound(NOT_FOUND, code="personal_token_not_found")
    row.revoked_at = utcnow()
    db.add(row)
    return row


async def usable_personal_token(
    db: AsyncSession, secret: str, *, now: datetime | None = None
) -> PersonalToken | None:
    """The unrevoked, unexpired token whose secret is ``secret``, or None."""
    if not looks_like_personal_token(secret):
        return None
    query = select(PersonalToken).where(
        col(PersonalToken.token_hash) == hash_secret(secret),
        col(PersonalToken.revoked_at).is_(None),
        col(PersonalToken.expires_at) > (now or utcnow()),
    )
    return (await db.exec(query)).first()


async def revoke_by_secret(db: AsyncSession, secret: str) -> PersonalToken | None:
    """Revoke the usable token whose secret is ``secret`` (RFC 7009: whoever holds a token may
    end it, as for a leaked one); the row, or None. Does not commit."""
    row = await usable_personal_token(db, secret)
    if row is not None:
        row.revoked_at = utcnow()
        db.add(row)
    return row


async def note_use(db: AsyncSession, token: PersonalToken, *, now: datetime | None = None) -> None:
    """Set ``last_used_at``, unless it was set less than :data:`LAST_USED_GRANULARITY` ago
    (one conditional UPDATE; commits)."""
    now = now or utcnow()
    if token.last_used_at is not None and now - token.last_used_at < LAST_USED_GRANULARITY:
        return
    await db.exec(
        update(PersonalToken)
        .where(
            col(PersonalToken.id) == token.id,
            col(PersonalToken.last_used_at).is_(None)
            | (col(PersonalToken.last_used_at) < now - LAST_USED_GRANULARITY),
        )
        .values(last_used_at=now)
    )
    await db.commit()


def token_scopes(token: PersonalToken, role: str) -> tuple[str, ...]:
    """The scopes an org token made from ``token`` may carry for a user with ``role``."""
    return tuple(s for s in ROLE_SCOPES.get(role, ()) if s in token.scopes)


def check_entry(token: PersonalToken, org_id: str, features: list[str]) -> None:
    """``invalid_target`` unless the token was made for the org ``org_id`` and the org's
    effective ``features`` (for this user) include ``api_access``."""
    if not (token.all_orgs or org_id in token.org_ids):
        raise OAuthError(
            "invalid_target",
            "This personal access token was not made for this org.",
            orgplane_code="personal_token_org",
        )
    if API_ACCESS not in features:
        raise OAuthError(
            "invalid_target",
            f"The org's plan does not include {API_ACCESS}: personal access tokens cannot enter "
            "it (sign in interactively, or ask for a plan with API access).",
            orgplane_code="api_access_required",
        )
