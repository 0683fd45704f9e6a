"""Signing-key rotation without downtime, by hand (`orgplane keys rotate`, the API) or by age.

A rotation publishes a new key at once and lets it sign only after every verifier's cached
JWKS can have expired; the keys signing until then retire at that moment and stay published
until every token they signed has expired. Expired keys are deleted (their private part is no
longer needed) by :func:`rotate_if_due`, which the reconciler loop calls on every replica.

Two replicas rotating at once cannot both succeed: the old keys are retired with a conditional
UPDATE (``retire_after IS NULL``) whose row count decides, as for refresh tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, update
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.audit_trail import record
from control_plane.db.models import SigningKey, User, utcnow
from control_plane.runtime import Runtime
from control_plane.signing.keys import (
    ID_TOKEN_ALG,
    KeyRecord,
    can_sign,
    create_key,
    is_id_token_key,
    key_state,
    load_records,
    rotation_times,
)


class RotationPending(Exception):
    """A rotation is under way: its new key does not sign yet."""

    def __init__(self, key: KeyRecord) -> None:
        super().__init__(f"key {key.kid} starts signing at {key.active_from:%Y-%m-%d %H:%M:%S} UTC")
        self.key = key


@dataclass(frozen=True)
class KeyView:
    """A key as listings show it: public facts and its state, never private material."""

    kid: str
    alg: str
    state: str
    created_at: datetime
    active_from: datetime
    retire_after: datetime | None
    expires_at: datetime | None

    @classmethod
    def of(cls, key: KeyRecord, now: datetime) -> KeyView:
        """The view of ``key`` at ``now``."""
        return cls(
            kid=key.kid,
            alg=key.alg,
            state=key_state(key, now),
            created_at=key.created_at,
            active_from=key.active_from,
            retire_after=key.retire_after,
            expires_at=key.expires_at,
        )


def publish_lead_seconds(runtime: Runtime) -> int:
    """How long a new key is published before it signs.

    The JWKS cache lifetime, plus the key ring's own cache: another replica may serve its
    JWKS without the new key for that long after the rotation.
    """
    return runtime.settings.tokens.jwks_cache_seconds + int(runtime.keyring.cache_seconds) + 1


def max_token_ttl(runtime: Runtime) -> int:
    """The longest lifetime of any JWT the control plane signs."""
    tokens = runtime.settings.tokens
    return max(tokens.access_token_ttl, tokens.org_token_ttl)


async def list_keys(db: AsyncSession, *, now: datetime | None = None) -> list[KeyView]:
    """Every key row, newest first, with its state."""
    now = now or utcnow()
    return [KeyView.of(key, now) for key in await load_records(db)]


async def rotate_keys(
    runtime: Runtime,
    db: AsyncSession,
    *,
    actor: User | None = None,
    actor_email: str = "",
    ip: str = "",
    reason: str = "manual",
    now: datetime | None = None,
) -> KeyView:
    """Start a rotation and commit it; answers the new key.

    Raises :class:`RotationPending` when a previous rotation's key does not sign yet, or when
    another process rotated at the same moment.
    """
    now = now or utcnow()
    keys = await load_records(db)
    pending = [k for k in keys if k.active_from > now]
    if pending:
        raise RotationPending(pending[0])
    times = rotation_times(
        now=now, jwks_cache=publish_lead_seconds(runtime), max_token_ttl=max_token_ttl(runtime)
    )
    signing = [k.kid for k in keys if can_sign(k, now) and k.retire_after is None]
    # With no key signing at all (every key expired), waiting would only prolong the outage.
    starts = times["active_from"] if signing else now
    retired = await db.exec(
        update(SigningKey)
        .where(col(SigningKey.kid).in_(signing), col(SigningKey.retire_after).is_(None))
        .values(retire_after=times["active_from"], expires_at=times["old_expires"])
    )
    if retired.rowcount != len(signing):
        await db.rollback()
        raise RotationPending(_first_pending(await load_records(db), now) or keys[0])
    new = create_key(runtime.box, alg=runtime.settings.tokens.signing_alg, active_from=starts)
    db.add(new)
    if any(is_id_token_key(k) for k in keys if k.kid in signing):  # ID-token keys rotate too
        db.add(create_key(runtime.box, alg=ID_TOKEN_ALG, active_from=starts))
    record(
        db,
        action="signing_key.rotate",
        actor=actor,
        actor_email=actor_email,
        target_type="signing_key",
        target_id=new.kid,
        ip=ip,
        reason=reason,
        retired=signing,
        signs_from=starts.isoformat(),
    )
    await db.commit()
    runtime.keyring.invalidate()
    return KeyView.of(KeyRecord.of(new), now)


def _first_pending(keys: list[KeyRecord], now: datetime) -> KeyRecord | None:
    return next((k for k in keys if k.active_from > now), None)


async def prune_expired_keys(db: AsyncSession, *, now: datetime | None = None) -> list[str]:
    """Delete keys that left the JWKS (no token they signed is valid); commits if any."""
    now = now or utcnow()
    gone = [k.kid for k in await load_records(db) if key_state(k, now) == "expired"]
    if gone:
        await db.exec(delete(SigningKey).where(col(SigningKey.kid).in_(gone)))
        record(
            db,
            action="signing_key.prune",
            actor_email="system",
            target_type="signing_key",
            target_id=",".join(gone)[:64],
            kids=gone,
        )
        await db.commit()
    return gone


async def rotate_if_due(runtime: Runtime, db: AsyncSession, *, now: datetime | None = None) -> bool:
    """Rotate when the signing key is ``key_rotation_days`` old; prune expired keys.

    Safe to call from every replica at any frequency: at most one rotation happens per due
    date. Answers whether this call started a rotation.
    """
    now = now or utcnow()
    await prune_expired_keys(db, now=now)
    days = runtime.settings.tokens.key_rotation_days
    if days <= 0:
        return False
    keys = await load_records(db)
    if _first_pending(keys, now) is not None:
        return False
    newest = max(
        (k.active_from for k in keys if can_sign(k, now) and not is_id_token_key(k)), default=None
    )
    if newest is not None and newest + timedelta(days=days) > now:
        return False
    try:
        await rotate_keys(runtime, db, actor_email="system", reason="scheduled", now=now)
    except RotationPending:
        return False
    return True


class KeyNotFound(Exception):
    """No signing key has that kid (or it has expired already)."""


async def retire_key_now(
    runtime: Runtime,
    db: AsyncSession,
    *,
    kid: str,
    actor: User | None = None,
    actor_email: str = "",
    ip: str = "",
    now: datetime | None = None,
) -> KeyView:
    """Emergency retirement of a compromised key: it leaves the JWKS and stops verifying now.

    Unlike a rotation nothing waits for caches: if no other key can sign, the earliest pending
    key (or a new one) signs from now on; verifiers that have not fetched it yet refetch on its
    unknown kid. Commits; answers the key as it is now (``expired``). Instances learn of it
    through their orgs' revocation lists (``org_revocation.retire_key_everywhere``).
    """
    now = now or utcnow()
    keys = await load_records(db)
    target = next((k for k in keys if k.kid == kid and key_state(k, now) != "expired"), None)
    if target is None:
        raise KeyNotFound(kid)
    await db.exec(
        update(SigningKey)
        .where(col(SigningKey.kid) == kid)
        .values(retire_after=now, expires_at=now)
    )
    # Its replacement is of its own kind: a platform key for a platform key, an ID-token key
    # for an ID-token key.
    others = [k for k in keys if k.kid != kid and is_id_token_key(k) == is_id_token_key(target)]
    if not any(can_sign(k, now) for k in others):
        pending = sorted((k for k in others if k.active_from > now), key=lambda k: k.active_from)
        if pending:
            await db.exec(
                update(SigningKey)
                .where(col(SigningKey.kid) == pending[0].kid)
                .values(active_from=now)
            )
        else:
            alg = target.alg if is_id_token_key(target) else runtime.settings.tokens.signing_alg
            db.add(create_key(runtime.box, alg=alg, active_from=now))
    record(
        db,
        action="signing_key.retire_now",
        actor=actor,
        actor_email=actor_email,
        target_type="signing_key",
        target_id=kid,
        ip=ip,
    )
    await db.commit()
    runtime.keyring.invalidate()
    retired = next(k for k in await load_records(db) if k.kid == kid)
    return KeyView.of(retired, now)
