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

import functools
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import msgspec
import structlog
from sqlalchemy import bindparam, case
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.audit_trail import record
from control_plane.branding.resolve import instance_branding
from control_plane.contract.versions import IMPLIED_CONTRACT_VERSION
from control_plane.db.models import Instance, InstanceEvent, Org, UsageSample, utcnow
from control_plane.db.types import utc
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
    config_version: Counter | None = None
    contract_version: Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)] | None = None

    @property
    def speaks(self) -> int:
        """The contract version the instance speaks (absent: the implied one)."""
        return self.contract_version or IMPLIED_CONTRACT_VERSION


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


@dataclass(frozen=True)
class RowState:
    """The parts of an Instance row a heartbeat is judged against."""

    usage_reported: dict[str, Any] | None
    last_heartbeat_seq: int
    last_heartbeat_at: datetime | None
    health: str
    version: str
    contract_version: int | None

    @classmethod
    def of(cls, instance: Instance) -> RowState:
        """The state of a loaded row."""
        return cls(
            instance.usage_reported,
            instance.last_heartbeat_seq,
            instance.last_heartbeat_at,
            instance.health,
            instance.version,
            instance.contract_version,
        )


@dataclass(frozen=True)
class Verdict:
    """How one heartbeat compares with its row: :func:`judge`'s answer."""

    accepted: bool
    run: str = ""
    started: datetime | None = None
    same_run: bool = True
    #: Something the row records moved (run, counters, gauges, health, version, contract
    #: version): write it.
    changed: bool = False
    #: Nothing moved but the row's last write is old enough to be refreshed.
    due: bool = False
    deltas: dict[str, int] = field(default_factory=dict)
    gauges: dict[str, int] = field(default_factory=dict)

    @property
    def writes(self) -> bool:
        """Whether the row is written."""
        return self.accepted and (self.changed or self.due)

    def values(self, body: HeartbeatIn, now: datetime) -> dict[str, Any]:
        """The Instance columns a written heartbeat sets."""
        values: dict[str, Any] = {
            "last_heartbeat_at": now,
            "last_heartbeat_seq": body.seq,
            "version": body.version,
            "health": body.status,
            "contract_version": body.speaks,
            "usage_reported": {
                "run": self.run,
                "started_at": self.started.isoformat() if self.started else "",
                "counters": msgspec.structs.asdict(body.usage),
            },
            "updated_at": now,
        }
        if not self.same_run or self.deltas.get("requests"):  # hibernation's idle clock
            values["last_active_at"] = now
        return values


def judge(
    state: RowState, body: HeartbeatIn, *, now: datetime, interval: float, gate_seq: int = 0
) -> Verdict:
    """Whether ``body`` is accepted against ``state``, and whether the row must be written.

    ``gate_seq`` is the last accepted ``seq`` of the body's run known outside the row.
    """
    started = _started(body)
    run = _run_of(body)
    baseline = state.usage_reported or {}
    same_run = baseline.get("run") == run
    if same_run:
        if body.seq <= max(state.last_heartbeat_seq, gate_seq):
            return Verdict(accepted=False)
    else:
        recorded = baseline.get("started_at")
        if recorded and started < datetime.fromisoformat(recorded):
            return Verdict(accepted=False)
    deltas = _deltas(body, baseline, same_run)
    gauges = {"storage_bytes": body.usage.storage_bytes, "active_users": body.usage.active_users}
    changed = (
        not same_run
        or any(deltas.values())
        or any(baseline.get("counters", {}).get(k) != v for k, v in gauges.items())
        or state.health != body.status
        or state.version != body.version
        or state.contract_version != body.speaks
    )
    last = state.last_heartbeat_at
    due = last is None or now - last >= timedelta(seconds=WRITE_EVERY_INTERVALS * interval)
    return Verdict(True, run, started, same_run, changed, due, deltas, gauges)


@functools.cache
def usage_upsert(dialect: str) -> Any:
    """The statement adding a heartbeat's counter deltas and gauges to the org's usage sample
    of the hour, built once per dialect; its parameters come from :func:`usage_params` (one
    dict, or a list of them for ``executemany``)."""
    insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = UsageSample.__table__.c  # type: ignore[attr-defined]
    names = ("org_id", "bucket", *MONOTONIC, "storage_bytes", "active_users")
    stmt = insert(UsageSample).values({n: bindparam(f"u_{n}", type_=table[n].type) for n in names})
    excluded = stmt.excluded
    return stmt.on_conflict_do_update(
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


def usage_params(org_id: str, verdict: Verdict, now: datetime) -> dict[str, Any]:
    """The parameters of :func:`usage_upsert` for one written heartbeat."""
    span = USAGE_BUCKET.total_seconds()
    bucket = datetime.fromtimestamp(now.timestamp() // span * span, UTC)
    values = {"org_id": org_id, "bucket": bucket, **verdict.deltas, **verdict.gauges}
    return {f"u_{k}": v for k, v in values.items()}


def _started(body: HeartbeatIn) -> datetime:
    return utc(body.started_at)


def _run_of(body: HeartbeatIn) -> str:
    return f"{body.instance_id}/{_started(body).isoformat()}"


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
        verdict = judge(
            RowState.of(instance),
            body,
            now=now,
            interval=self.interval,
            gate_seq=gate.last_seq(_run_of(body)),
        )
        if not verdict.accepted:
            return Outcome(accepted=False, wrote=False)
        gate.accepted(run=verdict.run, seq=body.seq)
        if not verdict.writes:
            return Outcome(accepted=True, wrote=False)
        # The row may come from the guard's session (detached): attach it before changing it,
        # so the flush writes exactly the changed columns without reading the row again.
        self.db.add(instance)
        for name, value in verdict.values(body, now).items():
            setattr(instance, name, value)
        if not verdict.same_run:
            self.db.add(
                InstanceEvent(
                    org_id=instance.org_id,
                    kind="instance.started",
                    message=f"run {verdict.run} (version {body.version})",
                )
            )
        if verdict.changed:
            dialect = self.db.get_bind().dialect.name
            await self.db.exec(
                usage_upsert(dialect), params=usage_params(instance.org_id, verdict, now)
            )
        await self.db.commit()
        return Outcome(accepted=True, wrote=True, new_run=not verdict.same_run)

    async def answer(
        self,
        org: Org,
        outcome: Outcome,
        *,
        contract_version: int,
        via_redis: bool = False,
        behind: bool = True,
    ) -> HeartbeatAnswer:
        """The configuration the instance must run with (no query for a root org whose
        instance is not ``behind``: branding is resolved only for one that is)."""
        base_url = self.runtime.settings.server.base_url
        return await answer_for(
            self.db,
            org,
            accepted=outcome.accepted,
            interval=self.interval,
            via_redis=via_redis,
            contract_version=contract_version,
            branding_base_url=base_url if behind else None,
        )


async def answer_for(
    db: AsyncSession,
    org: Org,
    *,
    accepted: bool,
    interval: float,
    via_redis: bool,
    contract_version: int,
    branding_base_url: str | None = None,
) -> HeartbeatAnswer:
    """The answer to a heartbeat of ``org``'s instance: its configuration, and ``via: redis``
    when its next heartbeats go to Redis (see :mod:`control_plane.instances.ingest`).
    ``branding_base_url``: include the org's branding, its logo URL under that base (None:
    leave it out, for an instance that already runs the current ``config_version``)."""
    limits = await effective_limits(db, org) if org.parent_id else own_quota(org)
    answer: HeartbeatAnswer = {
        "accepted": accepted,
        "config_version": org.config_version,
        "interval": interval,
        "limits": Limits(**limits),  # type: ignore[typeddict-item]
        "contract_version": contract_version,
    }
    if via_redis:
        answer["via"] = "redis"
    if branding_base_url is not None:
        answer["branding"] = await instance_branding(db, org, base_url=branding_base_url)
    return answer
