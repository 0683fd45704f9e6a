"""Telling instances which org tokens to refuse now (``org_instance/revocations.py`` reads it).

Each event writes one entry into the revocation list of every org concerned, in that org's
own Redis namespace (``contract.revocations_key``), and publishes it on the org's revocation
channel, so every instance of the org refuses the affected tokens as soon as the message
arrives:

* ``sub:<user id>``: a member removed (from the org, or from an ancestor it inherited a role
  through), a role lowered, a user disabled, logged out or with a new password, a staff
  member's approval revoked: the user's org tokens issued up to now.
* ``org``: an org suspended (and its descendants): every org token issued up to now.
* ``jti:<jti>``: one org token revoked (RFC 7009).
* ``kid:<kid>``: a signing key retired in an emergency: every token it signed, in every org.

The list lives as long as an org token can (``org_token_ttl`` plus a minute); an older entry
names only expired tokens. Writing needs the control plane's Redis admin connection (per-org
Redis users on); without Redis there is no channel and org tokens live their full lifetime.
A Redis failure is logged and does not fail the request that revoked: instances that cannot
follow the channel accept only freshly issued tokens meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import timedelta

import structlog
from redis.exceptions import RedisError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.db.models import AuditEvent, Org, User, utcnow
from control_plane.orgs.access import caller_roles
from control_plane.orgs.hierarchy import descendant_ids, live_orgs
from control_plane.runtime import Runtime
from orgplane_wire.contract import revocations_channel, revocations_key

log = structlog.get_logger("orgplane.tokens")


async def publish_revocation(
    runtime: Runtime, *, org_ids: Iterable[str], field: str, value: int | None = None
) -> None:
    """Write ``field`` (``sub:<id>``, ``org`` or ``jti:<jti>``) into each org's list and
    publish it; ``value`` defaults to now (unix seconds)."""
    redis = runtime.redis_admin
    targets = sorted(set(org_ids))
    if redis is None or not targets:
        return
    moment = int(time.time()) if value is None else value
    lifetime = runtime.settings.tokens.org_token_ttl + 60
    try:
        async with redis.pipeline(transaction=False) as pipe:
            for org_id in targets:
                pipe.hset(revocations_key(org_id), field, moment)
                pipe.expire(revocations_key(org_id), lifetime)
                pipe.publish(revocations_channel(org_id), f"{field}={moment}")
            await pipe.execute()
    except (RedisError, OSError) as exc:
        log.warning("revocation not published", field=field.split(":")[0], error=str(exc))


async def revoke_user_in_org(
    runtime: Runtime,
    db: AsyncSession,
    *,
    org_id: str,
    user_id: str,
    also: Iterable[str] = (),
) -> None:
    """The user's org tokens for ``org_id`` and its descendants (inherited roles) end now, and
    in the orgs ``also`` and theirs (memberships that derived from the one in ``org_id``)."""
    roots = [org_id, *also]
    below = await descendant_ids(db, roots)
    await publish_revocation(runtime, org_ids=[*roots, *below], field=f"sub:{user_id}")


async def revoke_user_everywhere(runtime: Runtime, db: AsyncSession, user: User) -> None:
    """The user's org tokens end now in every org they may hold one for: their roles and, for
    staff, the orgs they entered within an org token's lifetime (``staff.access`` events)."""
    orgs = set(await caller_roles(db, user))
    if user.is_platform_admin:
        since = utcnow() - timedelta(seconds=runtime.settings.tokens.org_token_ttl + 60)
        entered = select(AuditEvent.org_id).where(
            col(AuditEvent.actor_id) == user.id,
            col(AuditEvent.action) == "staff.access",
            col(AuditEvent.at) >= since,
        )
        orgs.update(org_id for org_id in (await db.exec(entered)).all() if org_id)
    await publish_revocation(runtime, org_ids=orgs, field=f"sub:{user.id}")


async def retire_key_everywhere(runtime: Runtime, db: AsyncSession, *, kid: str) -> int:
    """Every live org's instances refuse tokens signed by ``kid`` now (emergency retirement);
    answers how many orgs were told."""
    org_ids = list((await db.exec(select(Org.id).where(live_orgs()))).all())
    await publish_revocation(runtime, org_ids=org_ids, field=f"kid:{kid}")
    return len(org_ids)


async def revoke_org(runtime: Runtime, db: AsyncSession, *, org_id: str) -> None:
    """Every org token of ``org_id`` and its descendants ends now (suspension)."""
    below = await descendant_ids(db, [org_id])
    await publish_revocation(runtime, org_ids=[org_id, *below], field="org")
