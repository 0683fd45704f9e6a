"""Signing in through an identity provider: who the user is here, and their memberships.

The account is found, in this order:

1. by the link (provider, subject) made at an earlier sign-in;
2. by email, when the provider says ``email_verified: true``: the account is linked then. An
   unverified email never links (401 ``sso_email_not_verified``): anyone can claim any
   address at a provider that does not check it;
3. else, with just-in-time creation on, a new account is made (its email verified, no usable
   password) and linked; the provider must have verified the email here too. With it off:
   401 ``sso_no_account``.

Before any of that, a provider with allowed domains refuses an email of another domain (401
``sso_domain_not_allowed``). A disabled account is refused like a wrong password. Then the
claim-mapping rules update the provider's memberships (:mod:`control_plane.sso.memberships`).
Every outcome is audited as ``auth.login`` with ``method: sso``.

MFA: the sign-in counts as one with a second factor (``amr`` carries ``otp``) only when the
provider's ``amr`` says it used one (``mfa`` or ``otp``). Otherwise a user with TOTP on is asked
for a code as after a password, and orgs that require MFA refuse the session as they refuse a
password-only one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from litestar import Request
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.audit_trail import record
from control_plane.client_ip import client_ip
from control_plane.db.models import User, utcnow
from control_plane.db.sso_models import IdentityLink, IdentityProvider
from control_plane.identity.devices import note_device
from control_plane.identity.mfa import mfa_enabled
from control_plane.runtime import Runtime
from control_plane.sso.base import Attempt, ExternalIdentity, ProviderConfig, SsoError
from control_plane.sso.base import IdentityProvider as IdentityProviderClient
from control_plane.sso.claims import EMAIL_DOMAIN, Change
from control_plane.sso.memberships import apply_claims, rules_of
from control_plane.sso.registry import create_provider
from control_plane.tokens.mfa_gate import FEDERATED
from control_plane.users.service import find_by_email
from orgplane_wire.problems import NotFound

#: The provider's ``amr`` values that count as a second factor.
PROVIDER_MFA: Final = frozenset({"mfa", "otp"})
#: ``amr`` of a session made through a provider (``fed``: federated), with ``otp`` added when
#: the provider vouches for a second factor.
SSO_AMR: Final = (FEDERATED,)
SSO_MFA_AMR: Final = (FEDERATED, "otp")
#: A password hash no password verifies against: accounts made by a provider have none.
NO_PASSWORD: Final = "!sso"


@dataclass(frozen=True)
class SsoSignIn:
    """A checked sign-in through a provider."""

    user: User
    amr: tuple[str, ...]
    #: The user has TOTP on and the provider vouched for no second factor: ask for a code.
    needs_otp: bool
    changes: list[Change] = field(default_factory=list)


async def enabled_provider(db: AsyncSession, slug: str) -> IdentityProvider:
    """The enabled provider called ``slug``, or 404 ``identity_provider_not_found``."""
    query = select(IdentityProvider).where(col(IdentityProvider.slug) == slug)
    row = (await db.exec(query)).first()
    if row is None or not row.enabled:
        raise NotFound("There is no such sign-in provider.", code="identity_provider_not_found")
    return row


async def provider_client(
    runtime: Runtime, db: AsyncSession, row: IdentityProvider
) -> IdentityProviderClient:
    """The implementation of ``row``, with its secret decrypted and the claims its rules read."""
    needed = {r.claim.split(".")[0] for r in await rules_of(db, row.id)} - {EMAIL_DOMAIN}
    secret = runtime.box.decrypt(row.client_secret_enc).decode() if row.client_secret_enc else ""
    config = ProviderConfig(row.slug, row.discovery_url, row.client_id, secret,
                            tuple(row.scopes), tuple(sorted(needed)))  # fmt: skip
    return create_provider(row.kind, config)


async def authorization_url(
    runtime: Runtime, db: AsyncSession, row: IdentityProvider, attempt: Attempt
) -> str:
    """Where the browser signs in at ``row`` for ``attempt``."""
    client = await provider_client(runtime, db, row)
    return await client.authorization_url(attempt=attempt)


def _refuse(detail: str, reason: str, code: str) -> SsoError:
    return SsoError(detail, reason=reason, code=code)


def check_domain(row: IdentityProvider, identity: ExternalIdentity) -> None:
    """401 ``sso_domain_not_allowed`` unless the email's domain is allowed (or all are)."""
    if not row.allowed_domains:
        return
    domain = identity.email.rsplit("@", 1)[1] if "@" in identity.email else ""
    if domain not in row.allowed_domains:
        raise _refuse("Accounts of that email domain cannot sign in here.",
                      "domain_not_allowed", "sso_domain_not_allowed")  # fmt: skip


async def _linked_user(db: AsyncSession, row: IdentityProvider, subject: str) -> User | None:
    query = select(IdentityLink).where(
        col(IdentityLink.provider_id) == row.id, col(IdentityLink.subject) == subject
    )
    link = (await db.exec(query)).first()
    if link is None:
        return None
    link.last_login_at = utcnow()
    db.add(link)
    return await db.get(User, link.user_id)


async def _flush(db: AsyncSession) -> None:
    """Flush; two first sign-ins of one account at once: the loser is refused, not a 500."""
    try:
        await db.flush()
    except IntegrityError as exc:
        raise _refuse("Another sign-in of this account was under way; sign in again.",
                      "concurrent_sign_in", "sso_failed") from exc  # fmt: skip


async def resolve_user(
    db: AsyncSession, row: IdentityProvider, identity: ExternalIdentity, ip: str
) -> User:
    """The account ``identity`` signs in to, linking or creating it (flushed, not committed)."""
    user = await _linked_user(db, row, identity.subject)
    if user is not None:
        return user
    if not identity.email or not identity.email_verified:
        raise _refuse("The identity provider has not verified your email address, so it "
                      "cannot be matched to an account here.",
                      "email_not_verified", "sso_email_not_verified")  # fmt: skip
    user = await find_by_email(db, identity.email)
    if user is None:
        if not row.jit:
            raise _refuse("There is no account for you here; ask an administrator for one.",
                          "no_account", "sso_no_account")  # fmt: skip
        user = User(email=identity.email, name=identity.name, password_hash=NO_PASSWORD,
                    email_verified_at=utcnow())  # fmt: skip
        db.add(user)
        await _flush(db)
        record(db, action="user.create", actor=user, ip=ip, target_type="user",
               target_id=user.id, via="sso", provider=row.slug)  # fmt: skip
    link = IdentityLink(provider_id=row.id, subject=identity.subject, user_id=user.id,
                        last_login_at=utcnow())  # fmt: skip
    db.add(link)
    await _flush(db)
    record(db, action="identity_link.create", actor=user, ip=ip, target_type="user",
           target_id=user.id, provider=row.slug)  # fmt: skip
    return user


async def finish_sign_in(
    request: Request[Any, Any, Any],
    runtime: Runtime,
    db: AsyncSession,
    row: IdentityProvider,
    attempt: Attempt,
    params: dict[str, str],
) -> SsoSignIn:
    """Complete the sign-in the callback's ``params`` answer; refusals are audited (with the
    reason, never a token or code) and raised as 401 problems."""
    ip, slug = client_ip(request), row.slug  # the rollback of a refusal expires ``row``
    identity: ExternalIdentity | None = None
    try:
        client = await provider_client(runtime, db, row)
        identity = await client.complete(attempt=attempt, params=params)
        check_domain(row, identity)
        user = await resolve_user(db, row, identity, ip)
        if user.disabled:
            raise _refuse("This account is disabled.", "account_disabled", "sso_failed")
    except SsoError as exc:
        await db.rollback()
        record(db, action="auth.login", outcome="failure", ip=ip, method="sso",
               provider=slug, reason=exc.reason,
               actor_email=identity.email if identity else "")  # fmt: skip
        await db.commit()
        raise
    changes = await apply_claims(runtime, db, provider=row, user=user,
                                 claims=identity.claims, ip=ip)  # fmt: skip
    vouched = bool(PROVIDER_MFA & set(identity.amr))
    record(db, action="auth.login", actor=user, ip=ip, method="sso", provider=row.slug,
           provider_mfa=vouched)  # fmt: skip
    agent = request.headers.get("user-agent", "")
    await note_device(db, runtime.settings, user=user, ip=ip, user_agent=agent)
    await db.commit()
    needs_otp = not vouched and mfa_enabled(user)
    return SsoSignIn(user, SSO_MFA_AMR if vouched else SSO_AMR, needs_otp, changes)
