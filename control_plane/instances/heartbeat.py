"""Instance credentials and heartbeats: authenticate, ignore replays, roll usage, answer config.

Credential format: ``opi_<org_id>.<secret>``. The org id finds the Instance row by primary key;
only the SHA-256 of the whole credential is stored. :func:`issue_instance_credential` creates or
rotates it and returns the plaintext once.

A heartbeat belongs to a *run* of the instance (its ``instance_id`` and ``started_at``, kept in
``Instance.usage_reported``; ``Instance.started_at`` is the reconciler's). Within a
run ``seq`` only grows: a heartbeat whose ``seq`` is not above the last one seen is a replay and
is answered ``accepted: false`` with no write (200, so a retried request is harmless). A run
that started earlier than the recorded one is stale and ignored the same way. Counters restart
at zero with every run; the deltas since the last written heartbeat are added to the org's
:class:`UsageSample` of the hour.

Writes are coalesced: the row is written when status, version, run or any counter changed, or
when :data:`WRITE_EVERY_INTERVALS` heartbeat intervals passed since the last write (so
``last_heartbeat_at`` is never older than that for a live instance). The last accepted ``seq``
of the run is also kept in the store entry of :mod:`control_plane.instances.gate`, so replays
are caught between writes.

What a heartbeat costs: one indexed read of the instance and its org by primary key
(:func:`authenticate_instance`, outside a transaction), one store read and one store write;
a heartbeat that changed something, or is due, adds the row's UPDATE, the usage upsert and the
commit. The org's configuration is read on every heartbeat, so a change reaches the instance
with its next heartbeat.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import msgspec
import structlog
from sqlalchemy import case
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.audit.record import record
from control_plane.db.models import Instance, InstanceEvent, Org, UsageSample, utcnow
from control_plane.errors import NotFound, Unauthenticated
from control_plane.instances.gate import HeartbeatGate
from control_plane.orgs.hierarchy import effective_limits, own_quota
from control_plane.runtime import Runtime
from control_plane.security.secrets import hash_secret, secret_matches
from org_instance.contract import HeartbeatAnswer, Limits

log = structlog.get_logger("orgplane.instances")

CREDENTIAL_PREFIX = "opi"
_CREDENTIAL = re.compile(r"^opi_([A-Za-z0-9_-]{1,64})\.[A-Za-z0-9_-]{20,128}$")
#: An idle instance's row is still written this often (in heartbeat intervals): with ±10% jitter
#: the longest gap stays under 1.5 + 1.1 = 2.6 intervals, inside the reconciler's 3-interval
#: freshness window.
WRITE_EVERY_INTERVALS = 1.5
USAGE_BUCKET = timedelta(hours=1)
MONOTONIC = ("requests", "sessions", "messages")
Counter = Annotated[int, msgspec.Meta(ge=0, le=2**53)]
Short = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class UsageIn(msgspec.Struct, forbid_unknown_fields=True):
    """``contract.UsageCounters``."""

    requests: Counter = 0
    sessions: Counter = 0
    messages: Counter = 0
    files: Counter = 0
    storage_bytes: Counter = 0
    active_users: Counter = 0


class HeartbeatIn(msgspec.Struct, forbid_unknown_fields=True):
    """``contract.HeartbeatBody``, validated."""

    org_id: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    instance_id: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    version: Short
    started_at: datetime
    status: Literal["ok", "degraded"]
    seq: Annotated[int, msgspec.Meta(ge=1, le=2**53)]
    db_ok: bool
    redis_ok: bool
    usage: UsageIn


def credential_org(credential: str) -> str | None:
    """The org id a credential names, or None when it is not shaped like one."""
    match = _CREDENTIAL.match(credential) if len(credential) <= 200 else None
    return match.group(1) if match else None


async def issue_instance_credential(db: AsyncSession, *, org_id: str) -> str:
    """A new credential for the org's instance (the old one stops working); not committed."""
    instance = await db.get(Instance, org_id)
    if instance is None:
        raise NotFound("The org has no instance.", code="instance_not_found")
    credential = f"{CREDENTIAL_PREFIX}_{org_id}.{secrets.token_urlsafe(32)}"
    instance.credential_hash = hash_secret(credential)
    instance.updated_at = utcnow()
    db.add(instance)
    record(
        db,
        action="instance.credential_issued",
        org_id=org_id,
        target_type="instance",
        target_id=org_id,
    )
    return credential


#: The instance and its org in one indexed lookup by primary key: all a quiet heartbeat reads.
_INSTANCE_AND_ORG = select(Instance, Org).join(Org, col(Org.id) == col(Instance.org_id))


async def authenticate_instance(db: AsyncSession, credential: str) -> tuple[Instance, Org]:
    """The Instance the credential belongs to, and its org (one query); 401 otherwise."""
    org_id = credential_org(credential)
    found = (
        (await db.exec(_INSTANCE_AND_ORG.where(col(Instance.org_id) == org_id))).first()
        if org_id
        else None
    )
    instance, org = found if found is not None else (None, None)
    stored = instance.credential_hash if instance is not None else ""
    # Compare even when nothing matched, so timing does not tell which part was wrong.
    ok = secret_matches(credential, stored or "0" * 64) and bool(stored)
    if instance is None or org is None or not ok:
        raise Unauthenticated("The instance credential is not valid.", code="invalid_credential")
    return instance, org


def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes for timezone=True columns; they are stored in UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _deltas(body: HeartbeatIn, baseline: dict[str, Any], same_run: bool) -> dict[str, int]:
    counters = msgspec.structs.asdict(body.usage)
    before = baseline.get("counters", {}) if same_run else {}
    return {k: max(0, counters[k] - int(before.get(k, 0))) for k in MONOTONIC}


@dataclass(frozen=True)
class Outcome:
    """What processing a heartbeat did."""

    accepted: bool
    wrote: bool
    new_run: bool = False


class HeartbeatProcessor:
    """Applies one authenticated heartbeat to an instance's row and the org's usage."""

    def __init__(self, runtime: Runtime, db: AsyncSession) -> None:
        self.runtime, self.db = runtime, db
        self.interval = runtime.settings.provisioning.heartbeat_interval

    async def process(self, instance: Instance, body: HeartbeatIn, gate: HeartbeatGate) -> Outcome:
        """Record the heartbeat (or ignore a replay); commits when it writes.

        ``gate`` knows the last seq accepted between row writes and learns this one; the caller
        saves it.
        """
        now = utcnow()
        started = body.started_at if body.started_at.tzinfo else body.started_at.replace(tzinfo=UTC)
        run = f"{body.instance_id}/{started.isoformat()}"
        baseline = instance.usage_reported or {}
        same_run = baseline.get("run") == run
        if same_run:
            seen = max(instance.last_heartbeat_seq, gate.last_seq(run))
            if body.seq <= seen:
                return Outcome(accepted=False, wrote=False)
        else:
            recorded = baseline.get("started_at")
            if recorded and started < datetime.fromisoformat(recorded):
                return Outcome(accepted=False, wrote=False)
        deltas = _deltas(body, baseline, same_run)
        gauges = {
            "storage_bytes": body.usage.storage_bytes,
            "active_users": body.usage.active_users,
        }
        health = body.status
        changed = (
            not same_run
            or any(deltas.values())
            or any(baseline.get("counters", {}).get(k) != v for k, v in gauges.items())
            or instance.health != health
            or instance.version != body.version
        )
        last = _aware(instance.last_heartbeat_at)
        due = last is None or now - last >= timedelta(seconds=WRITE_EVERY_INTERVALS * self.interval)
        gate.accepted(run=run, seq=body.seq)
        if not (changed or due):
            return Outcome(accepted=True, wrote=False)
        self._update_row(instance, body, run=run, started=started, now=now)
        if not same_run or deltas["requests"]:  # hibernation's idle clock (a change: written)
            instance.last_active_at = now
        if not same_run:
            self.db.add(
                InstanceEvent(
                    org_id=instance.org_id,
                    kind="instance.started",
                    message=f"run {run} (version {body.version})",
                )
            )
        if changed:
            await self._roll_usage(instance.org_id, deltas, gauges, now)
        await self.db.commit()
        return Outcome(accepted=True, wrote=True, new_run=not same_run)

    def _update_row(
        self, instance: Instance, body: HeartbeatIn, *, run: str, started: datetime, now: datetime
    ) -> None:
        # The row may come from the guard's session (detached): attach it before changing it,
        # so the flush writes exactly the changed columns without reading the row again.
        self.db.add(instance)
        instance.last_heartbeat_at = now
        instance.last_heartbeat_seq = body.seq
        instance.version = body.version
        instance.health = body.status
        instance.usage_reported = {
            "run": run,
            "started_at": started.isoformat(),
            "counters": msgspec.structs.asdict(body.usage),
        }
        instance.updated_at = now

    async def _roll_usage(
        self, org_id: str, deltas: dict[str, int], gauges: dict[str, int], now: datetime
    ) -> None:
        bucket = datetime.fromtimestamp(
            now.timestamp() // USAGE_BUCKET.total_seconds() * USAGE_BUCKET.total_seconds(), UTC
        )
        dialect = self.db.get_bind().dialect.name
        insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
        stmt = insert(UsageSample).values(org_id=org_id, bucket=bucket, **deltas, **gauges)
        table = UsageSample.__table__.c  # type: ignore[attr-defined]
        excluded = stmt.excluded
        stmt = stmt.on_conflict_do_update(
            index_elements=["org_id", "bucket"],
            set_={
                **{k: table[k] + excluded[k] for k in MONOTONIC},
                "storage_bytes": excluded.storage_bytes,
                "active_users": case(
                    (table.active_users > excluded.active_users, table.active_users),
                    else_=excluded.active_users,
                ),
            },
        )
        await self.db.exec(stmt)

    async def answer(self, org: Org, outcome: Outcome) -> HeartbeatAnswer:
        """The configuration the instance must run with (no query for a root org)."""
        limits = await effective_limits(self.db, org) if org.parent_id else own_quota(org)
        return {
            "accepted": outcome.accepted,
            "config_version": org.config_version,
            "interval": self.interval,
            "limits": Limits(**limits),  # type: ignore[typeddict-item]
        }
