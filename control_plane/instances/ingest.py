"""Heartbeats over Redis: instances leave them in their own namespaces, one replica reads them.

An HTTP heartbeat costs a request through the whole stack, about 2 ms of control-plane CPU, so
10,000 orgs at a 10 s interval would need two cores just to hear them. With the ``redis``
transport (``heartbeat_transport``, the default when org instances have their own Redis users)
only the first heartbeat of a run is a ``POST``: it registers the run and its answer says
``via: redis``. From then on the instance writes each heartbeat to
:func:`~orgplane_wire.contract.heartbeat_key` in its own namespace (which only its ACL user and
the control plane can write, so the key's name is its authentication) and reads the control
plane's answer from :func:`~orgplane_wire.contract.heartbeat_answer_key` in the same round trip.

:class:`RedisHeartbeats` runs in every replica that has the admin connection; the one holding a
Redis lock reads every ``heartbeat_poll_seconds``:

1. the org ids with a registered run (one indexed query);
2. their heartbeat keys, 1,000 per round trip, through a script that returns a value only when
   it is a string of at most :data:`MAX_HEARTBEAT_BYTES` (an org cannot make the control plane
   pull a huge or foreign-typed value);
3. the values that differ from the last read are decoded and validated like a ``POST`` body
   (the body's org must be the key's, its contract version one this control plane speaks:
   else it is ignored, its answer key expires and the instance posts, to be answered 409);
   their rows are read in one query per 1,000 and judged by
   :func:`~control_plane.instances.heartbeat.judge`, the rules of the HTTP path;
4. quiet heartbeats write nothing; due ones (no change, row older than 1.5 intervals) are
   written in one ``executemany``; changed ones one by one, conditional on the ``seq`` the row
   had, with their usage, all in one transaction;
5. every accepted heartbeat renews its answer key's expiry; a missing answer, or an instance
   running an older ``config_version`` than its org, gets a new one.

Only same-run heartbeats are taken here: a new run must register over HTTP (that is where its
``instance.started`` event is written and the reconciler woken). An answer key expires
:func:`answer_ttl` seconds (two intervals and two polls) after the last heartbeat read renewed
it, and the ``POST`` path says ``via: redis`` only while the reader lock is held, so when no
replica reads (the transport was switched to ``http``, the last reader stopped) instances go
back to posting within that time.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

import msgspec
import structlog
from redis.exceptions import LockError, RedisError
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import col
from sqlmodel import select as select_models

from control_plane.contract.versions import speaks_supported
from control_plane.db.models import Instance, Org, utcnow
from control_plane.instances.heartbeat import answer_for
from control_plane.instances.ingest_redis import MAX_HEARTBEAT_BYTES as MAX_HEARTBEAT_BYTES
from control_plane.instances.ingest_redis import READ_SCRIPT, RENEW_SCRIPT, decode, hold_lock
from control_plane.instances.ingest_redis import TOO_BIG as TOO_BIG
from control_plane.instances.ingest_redis import answer_ttl as answer_ttl
from control_plane.instances.ingest_redis import cancel_requested as cancel_requested
from control_plane.instances.ingest_redis import poll_seconds as poll_seconds
from control_plane.instances.ingest_redis import publish_answer as publish_answer
from control_plane.instances.ingest_redis import reader_lock as reader_lock
from control_plane.instances.ingest_redis import uses_redis as uses_redis
from control_plane.instances.ingest_sql import CHANGED, DUE, REGISTERED, ROWS
from control_plane.instances.judging import (
    HeartbeatIn,
    RowState,
    Verdict,
    judge,
    usage_params,
    usage_upsert,
)
from control_plane.runtime import Runtime
from orgplane_wire.contract import heartbeat_answer_key, heartbeat_key

log = structlog.get_logger("orgplane.instances.ingest")

#: Keys per script call and rows per query.
BATCH = 1000


@dataclass
class PollReport:
    """What one read of the heartbeat keys did (counts)."""

    keys: int = 0
    new: int = 0
    invalid: int = 0
    accepted: int = 0
    written: int = 0
    answered: int = 0


@dataclass
class _Judged:
    body: HeartbeatIn
    verdict: Verdict
    seq_before: int
    config_behind: bool


@dataclass
class RedisHeartbeats:
    """Reads the heartbeats instances leave in Redis (see the module docstring)."""

    runtime: Runtime
    redis: Any
    #: The last value read per org: an unchanged value is not decoded again.
    seen: dict[str, bytes] = field(default_factory=dict)
    warned: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._read = self.redis.register_script(READ_SCRIPT)
        self._renew = self.redis.register_script(RENEW_SCRIPT)
        self.interval = self.runtime.settings.provisioning.heartbeat_interval

    async def run_forever(self) -> None:
        """Hold the reader lock when free and read every poll interval; never raises. The lock
        is given back when cancelled, so another replica takes over at once."""
        period = poll_seconds(self.runtime)
        lock = self.redis.lock(
            reader_lock(self.runtime), timeout=max(5.0, 3 * period), blocking=False
        )
        try:
            await self._read_while_held(lock, period)
        finally:
            if lock.local.token:
                with contextlib.suppress(LockError, RedisError, OSError):
                    await asyncio.shield(lock.release())

    async def _read_while_held(self, lock: Any, period: float) -> None:
        while True:
            try:
                if await hold_lock(lock):
                    await self.poll()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if cancel_requested():
                    raise asyncio.CancelledError from exc
                if isinstance(exc, (RedisError, OSError, SQLAlchemyError)):
                    error = f"{type(exc).__name__}: {exc}"[:300]
                    log.warning("heartbeat read failed", error=error)
                else:  # a bug must not end the reading for good
                    log.exception("heartbeat read failed")
            if cancel_requested():
                raise asyncio.CancelledError
            await asyncio.sleep(period)

    async def poll(self) -> PollReport:
        """Read, judge and record every changed heartbeat once."""
        report = PollReport()
        async with self.runtime.engine.connect() as conn:
            org_ids = list((await conn.execute(REGISTERED)).scalars())
        report.keys = len(org_ids)
        bodies = await self._changed(org_ids, report)
        if bodies:
            judged = await self._record(bodies, report)
            await self._answer(judged, report)
        return report

    async def _changed(self, org_ids: list[str], report: PollReport) -> dict[str, HeartbeatIn]:
        bodies: dict[str, HeartbeatIn] = {}
        current = set(org_ids)
        for gone in [o for o in self.seen if o not in current]:
            del self.seen[gone]
        for i in range(0, len(org_ids), BATCH):
            chunk = org_ids[i : i + BATCH]
            values = await self._read(
                keys=[heartbeat_key(o) for o in chunk], args=[MAX_HEARTBEAT_BYTES]
            )
            for org_id, raw in zip(chunk, values, strict=True):
                if not raw or raw == self.seen.get(org_id):
                    continue
                self.seen[org_id] = raw
                report.new += 1
                body = decode(raw)
                if body is None or body.org_id != org_id or not speaks_supported([body.speaks]):
                    report.invalid += 1
                    self._warn(org_id)
                    continue
                self.warned.discard(org_id)
                bodies[org_id] = body
        return bodies

    def _warn(self, org_id: str) -> None:
        if org_id not in self.warned:
            self.warned.add(org_id)
            log.warning(
                "heartbeat in Redis ignored: not a valid heartbeat of this org", org_id=org_id
            )

    async def _record(
        self, bodies: dict[str, HeartbeatIn], report: PollReport
    ) -> dict[str, _Judged]:
        now = utcnow()
        judged: dict[str, _Judged] = {}
        due: list[dict[str, Any]] = []
        ids = list(bodies)
        async with self.runtime.engine.begin() as conn:
            for i in range(0, len(ids), BATCH):
                rows = await conn.execute(ROWS.where(col(Instance.org_id).in_(ids[i : i + BATCH])))
                for org_id, reported, seq, at, health, version, contract, config in rows:
                    body = bodies[org_id]
                    verdict = judge(
                        RowState(reported, seq, at, health, version, contract),
                        body,
                        now=now,
                        interval=self.interval,
                    )
                    if not (verdict.accepted and verdict.same_run):
                        continue  # a replay, or a run that did not register over HTTP
                    behind = body.config_version is not None and body.config_version != config
                    judged[org_id] = _Judged(body, verdict, seq, behind)
            usage = []
            for org_id, item in judged.items():
                verdict, body = item.verdict, item.body
                if verdict.changed:
                    if await self._write_changed(conn, org_id, item, now):
                        usage.append(usage_params(org_id, verdict, now))
                elif verdict.due:
                    due.append({"b_org": org_id, "b_seq": body.seq, "b_now": now})
            if due:
                await conn.execute(DUE, due)
            if usage:
                await conn.execute(usage_upsert(conn.dialect.name), usage)
        report.accepted = len(judged)
        report.written = len(due) + len(usage)
        return judged

    @staticmethod
    async def _write_changed(conn: Any, org_id: str, item: _Judged, now: Any) -> bool:
        values = item.verdict.values(item.body, now)
        result = await conn.execute(
            CHANGED,
            {
                "b_org": org_id,
                "b_prev": item.seq_before,
                "b_now": now,
                "b_seq": item.body.seq,
                "b_version": values["version"],
                "b_health": values["health"],
                "b_contract": values["contract_version"],
                "b_usage": values["usage_reported"],
                "b_active": values.get("last_active_at"),
            },
        )
        # Another writer got there first when no row matched; the next read decides.
        return bool(result.rowcount == 1)

    async def _answer(self, judged: dict[str, _Judged], report: PollReport) -> None:
        ids = list(judged)
        ttl = answer_ttl(self.runtime)
        stale = {o for o in ids if judged[o].config_behind}
        for i in range(0, len(ids), BATCH):
            chunk = ids[i : i + BATCH]
            missing = await self._renew(keys=[heartbeat_answer_key(o) for o in chunk], args=[ttl])
            stale.update(chunk[int(n) - 1] for n in missing)
        if not stale:
            return
        async with self.runtime.sessions() as db:
            orgs = (await db.exec(select_models(Org).where(col(Org.id).in_(stale)))).all()
            answers = {
                org.id: await answer_for(
                    db,
                    org,
                    accepted=True,
                    interval=self.interval,
                    via_redis=True,
                    contract_version=judged[org.id].body.speaks,
                    branding_base_url=self.runtime.settings.server.base_url,
                )
                for org in orgs
            }
        async with self.redis.pipeline(transaction=False) as pipe:
            for org_id, answer in answers.items():
                pipe.set(heartbeat_answer_key(org_id), msgspec.json.encode(answer), ex=ttl)
            await pipe.execute()
        report.answered = len(answers)


@contextlib.asynccontextmanager
async def reading(runtime: Runtime) -> Any:
    """Run a :class:`RedisHeartbeats` reader while the context is open (when Redis is used)."""
    if not uses_redis(runtime):
        yield None
        return
    reader = RedisHeartbeats(runtime, runtime.redis_admin)
    task = asyncio.create_task(reader.run_forever(), name="orgplane-heartbeat-reader")
    try:
        yield reader
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(task, timeout=10)
