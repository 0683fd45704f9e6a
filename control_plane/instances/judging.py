"""The rules of a heartbeat: its body, and how it compares with its Instance row (accepted or a
replay, same run or a new one, changed, due for a write) and the usage it adds. Both the HTTP
path (:mod:`control_plane.instances.heartbeat`) and the Redis reader
(:mod:`control_plane.instances.ingest`) judge heartbeats with :func:`judge`."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import msgspec
from sqlalchemy import bindparam, case
from sqlalchemy.dialects import postgresql, sqlite

from control_plane.contract.versions import IMPLIED_CONTRACT_VERSION
from control_plane.db.models import Instance, UsageSample
from control_plane.db.types import utc

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


def _deltas(body: HeartbeatIn, baseline: dict[str, Any], same_run: bool) -> dict[str, int]:
    counters = msgspec.structs.asdict(body.usage)
    before = baseline.get("counters", {}) if same_run else {}
    return {k: max(0, counters[k] - int(before.get(k, 0))) for k in MONOTONIC}


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
    run = run_of(body)
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


def run_of(body: HeartbeatIn) -> str:
    return f"{body.instance_id}/{_started(body).isoformat()}"
