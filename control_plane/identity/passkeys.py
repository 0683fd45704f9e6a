"""Passkeys (WebAuthn, through Duo's ``webauthn``): a second factor beside TOTP.

* **The relying party** is the control plane's public URL: its origin is the only one accepted,
  and the RP ID is its host (or ``ORGPLANE_PASSKEY_RP_ID``, a parent domain of it).
* **A challenge** is 64 random bytes, stored as its SHA-256 (:class:`PasskeyChallenge`), bound to
  the user, the ceremony and the session (a registration) or the pending sign-in (a login),
  and valid for :data:`CHALLENGE_TTL` seconds. It is spent by one conditional DELETE before the
  answer is checked, so a challenge is used at most once, whether the answer is right or not,
  and of two racing answers at most one gets it.
* **A passkey** is added while two-factor authentication (TOTP) is on, so that the account
  always has recovery codes; turning MFA off removes them. At most :data:`MAX_PASSKEYS` each.
* **An assertion** must come from one of the user's own credentials, carry the challenge, the
  origin and the RP ID, have the user-presence flag (and user verification when
  ``ORGPLANE_PASSKEY_USER_VERIFICATION`` is ``required``), be signed by the stored key, and
  raise the signature counter (a counter that does not grow means a cloned authenticator;
  the update is conditional, so two racing assertions cannot both move it).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from sqlalchemy import delete, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    base64url_to_bytes,
    bytes_to_base64url,
    generate_challenge,
    options_to_json_dict,
    parse_authentication_credential_json,
    parse_client_data_json,
    parse_registration_credential_json,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    CredentialDeviceType,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from control_plane.db.models import User, utcnow
from control_plane.db.passkey_models import Passkey, PasskeyChallenge
from control_plane.settings import Settings
from orgplane_wire.problems import BadRequest, Conflict

MAX_PASSKEYS: Final = 10
CHALLENGE_TTL: Final = 300
RP_NAME: Final = "orgplane"
Ceremony = Literal["register", "login"]
#: RFC 8176 ``amr`` of a passkey: proof of possession of a hardware-secured key (a credential
#: bound to its device) or of a software-secured one (a synced passkey, which can be copied).
HARDWARE_KEY: Final = "hwk"
SOFTWARE_KEY: Final = "swk"


class PasskeyRefused(Exception):
    """An assertion that does not prove the user: ``reason`` is for the audit log only."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class RelyingParty:
    id: str
    origin: str


def relying_party(settings: Settings) -> RelyingParty:
    """The RP ID and the one origin passkeys are used from (the public URL's)."""
    base = urlsplit(settings.server.base_url)
    rp_id = settings.security.passkey_rp_id or base.hostname or ""
    return RelyingParty(rp_id, f"{base.scheme}://{base.netloc}")


def _verification(settings: Settings) -> UserVerificationRequirement:
    return UserVerificationRequirement(settings.security.passkey_user_verification)


def _needs_verification(settings: Settings) -> bool:
    return settings.security.passkey_user_verification == "required"


def _hash(challenge: bytes) -> str:
    return hashlib.sha256(challenge).hexdigest()


async def user_passkeys(db: AsyncSession, user_id: str) -> list[Passkey]:
    """The user's passkeys, oldest first."""
    rows = await db.exec(
        select(Passkey).where(col(Passkey.user_id) == user_id).order_by(col(Passkey.created_at))
    )
    return list(rows.all())


async def _new_challenge(db: AsyncSession, user: User, ceremony: Ceremony, binding: str) -> bytes:
    """A challenge for ``ceremony`` (row added, not committed); the user's expired ones go."""
    now = utcnow()
    await db.exec(
        delete(PasskeyChallenge).where(
            col(PasskeyChallenge.user_id) == user.id, col(PasskeyChallenge.expires_at) < now
        )
    )
    challenge = generate_challenge()
    db.add(
        PasskeyChallenge(
            challenge_hash=_hash(challenge),
            user_id=user.id,
            purpose=ceremony,
            binding=binding,
            expires_at=now + timedelta(seconds=CHALLENGE_TTL),
        )
    )
    return challenge


async def _spend_challenge(
    db: AsyncSession, user: User, ceremony: Ceremony, binding: str, client_data: bytes
) -> bytes:
    """The challenge the client signed, spent now; refused when it is not one of ours for
    this user, ceremony and session, or has expired, or was spent already."""
    try:
        challenge = parse_client_data_json(client_data).challenge
    except Exception:  # the library raises several kinds for malformed client data
        raise PasskeyRefused("malformed") from None
    spent = await db.exec(
        delete(PasskeyChallenge)
        .where(
            col(PasskeyChallenge.challenge_hash) == _hash(challenge),
            col(PasskeyChallenge.user_id) == user.id,
            col(PasskeyChallenge.purpose) == ceremony,
            col(PasskeyChallenge.binding) == binding,
            col(PasskeyChallenge.expires_at) > utcnow(),
        )
        .returning(col(PasskeyChallenge.id))
        .execution_options(synchronize_session=False)
    )
    if spent.first() is None:
        raise PasskeyRefused("challenge")
    return challenge


def _descriptor(passkey: Passkey) -> PublicKeyCredentialDescriptor:
    known = {t.value for t in AuthenticatorTransport}
    transports = [AuthenticatorTransport(t) for t in passkey.transports.split() if t in known]
    return PublicKeyCredentialDescriptor(
        id=base64url_to_bytes(passkey.credential_id), transports=transports or None
    )


async def registration_options(
    db: AsyncSession, settings: Settings, user: User, binding: str
) -> dict[str, Any]:
    """Options for ``navigator.credentials.create()`` (as JSON), with a new challenge bound
    to ``binding`` (the session); 409 ``too_many_passkeys`` past :data:`MAX_PASSKEYS`."""
    existing = await user_passkeys(db, user.id)
    if len(existing) >= MAX_PASSKEYS:
        raise Conflict(
            f"You have {MAX_PASSKEYS} passkeys, the most an account can have: remove one first.",
            code="too_many_passkeys",
        )
    rp = relying_party(settings)
    options = generate_registration_options(
        rp_id=rp.id,
        rp_name=RP_NAME,
        user_name=user.email,
        user_id=user.id.encode(),
        user_display_name=user.name or user.email,
        challenge=await _new_challenge(db, user, "register", binding),
        timeout=CHALLENGE_TTL * 1000,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=_verification(settings),
        ),
        exclude_credentials=[_descriptor(p) for p in existing],
    )
    return options_to_json_dict(options)


async def register(
    db: AsyncSession,
    settings: Settings,
    user: User,
    binding: str,
    credential: dict[str, Any],
    name: str,
) -> Passkey:
    """Check the answer of ``navigator.credentials.create()`` and keep its credential (row
    added, not committed). 400 ``invalid_passkey`` for an answer that is malformed, to an
    unknown, spent or expired challenge, or for another origin or RP ID; 409
    ``passkey_exists`` for a credential already registered."""
    rp = relying_party(settings)
    try:
        parsed = parse_registration_credential_json(credential)
        challenge = await _spend_challenge(
            db, user, "register", binding, parsed.response.client_data_json
        )
        verified = verify_registration_response(
            credential=parsed,
            expected_challenge=challenge,
            expected_rp_id=rp.id,
            expected_origin=rp.origin,
            require_user_verification=_needs_verification(settings),
        )
    except (WebAuthnException, PasskeyRefused, ValueError, KeyError, TypeError):
        raise BadRequest(
            "The passkey could not be checked (or its request has expired): try again.",
            code="invalid_passkey",
            field="credential",
        ) from None
    credential_id = bytes_to_base64url(verified.credential_id)
    taken = await db.exec(select(Passkey.id).where(col(Passkey.credential_id) == credential_id))
    if taken.first() is not None:
        raise Conflict("This passkey is registered already.", code="passkey_exists")
    transports = parsed.response.transports or []
    row = Passkey(
        user_id=user.id,
        credential_id=credential_id,
        public_key=bytes_to_base64url(verified.credential_public_key),
        sign_count=verified.sign_count,
        transports=" ".join(t.value for t in transports)[:200],
        name=name,
    )
    db.add(row)
    return row


async def login_options(
    db: AsyncSession, settings: Settings, user: User, binding: str
) -> dict[str, Any] | None:
    """Options for ``navigator.credentials.get()`` (as JSON) naming the user's passkeys, with
    a new challenge bound to ``binding`` (the pending sign-in); None without passkeys."""
    passkeys = await user_passkeys(db, user.id)
    if not passkeys:
        return None
    options = generate_authentication_options(
        rp_id=relying_party(settings).id,
        challenge=await _new_challenge(db, user, "login", binding),
        timeout=CHALLENGE_TTL * 1000,
        allow_credentials=[_descriptor(p) for p in passkeys],
        user_verification=_verification(settings),
    )
    return options_to_json_dict(options)


async def verify_login(
    db: AsyncSession, settings: Settings, user: User, binding: str, credential: Any
) -> str:
    """Check an answer of ``navigator.credentials.get()`` for ``user``: its RFC 8176 ``amr``
    method (:data:`HARDWARE_KEY` or :data:`SOFTWARE_KEY`), the counter stored (not committed).
    Raises :class:`PasskeyRefused` (the challenge is spent all the same)."""
    try:
        parsed = parse_authentication_credential_json(credential)
    except (WebAuthnException, ValueError, KeyError, TypeError):
        raise PasskeyRefused("malformed") from None
    row = (
        await db.exec(
            select(Passkey).where(
                col(Passkey.credential_id) == parsed.id, col(Passkey.user_id) == user.id
            )
        )
    ).first()
    challenge = await _spend_challenge(db, user, "login", binding, parsed.response.client_data_json)
    if row is None:
        raise PasskeyRefused("unknown_credential")
    rp = relying_party(settings)
    try:
        verified = verify_authentication_response(
            credential=parsed,
            expected_challenge=challenge,
            expected_rp_id=rp.id,
            expected_origin=rp.origin,
            credential_public_key=base64url_to_bytes(row.public_key),
            credential_current_sign_count=row.sign_count,
            require_user_verification=_needs_verification(settings),
        )
    except WebAuthnException as exc:
        raise PasskeyRefused("sign_count" if "sign count" in str(exc) else "invalid") from None
    new_count = verified.new_sign_count
    counter_moves = (
        col(Passkey.sign_count) < new_count if new_count else col(Passkey.sign_count) == 0
    )
    moved = await db.exec(
        update(Passkey)
        .where(col(Passkey.id) == row.id, counter_moves)
        .values(sign_count=new_count, last_used_at=utcnow())
        .returning(col(Passkey.id))
        .execution_options(synchronize_session=False)
    )
    if moved.first() is None:
        raise PasskeyRefused("sign_count")
    if verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE:
        return SOFTWARE_KEY
    return HARDWARE_KEY


async def forget_passkeys(db: AsyncSession, user_id: str) -> None:
    """Remove the user's passkeys and their pending challenges (not committed)."""
    await db.exec(delete(PasskeyChallenge).where(col(PasskeyChallenge.user_id) == user_id))
    await db.exec(delete(Passkey).where(col(Passkey.user_id) == user_id))
