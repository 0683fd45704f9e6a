"""The load generator of :mod:`benchmarks.bench_heartbeats`: each org's heartbeat once per
``BENCH_HEARTBEATS_INTERVAL``, open-loop (heartbeat *k* is due at ``k / rate`` whatever the
answers before it did), over keep-alive HTTP connections or, as instances on the ``redis``
transport do, left in Redis."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec
from redis.exceptions import RedisError

from benchmarks.instance_loopback import connect, raw_request
from orgplane_wire.contract import (
    HEARTBEAT_PATH,
    heartbeat_answer_key,
    heartbeat_key,
    heartbeat_key_ttl,
)

INTERVAL = float(os.environ.get("BENCH_HEARTBEATS_INTERVAL", "10"))
ACTIVE = float(os.environ.get("BENCH_HEARTBEATS_ACTIVE", "0.05"))
CONNECTIONS = 64
#: Seconds after the last heartbeat was due before the rest are given up (the bound of a run).
GRACE = 10.0
VERSION = "bench-1"
COUNTERS = ("requests", "sessions", "messages", "files", "storage_bytes", "active_users")


@dataclass
class Load:
    """What the load generator saw."""

    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    late_starts: int = 0
    #: Heartbeats never sent: the run's time was up (the server fell behind).
    unsent: int = 0


class HeartbeatLoad:
    """Paced heartbeats of many orgs over a pool of keep-alive connections."""

    def __init__(
        self, port: int, org_ids: list[str], credentials: dict[str, str], *, started_at: datetime
    ) -> None:
        self.port, self.org_ids, self.credentials = port, org_ids, credentials
        self.rate = len(org_ids) / INTERVAL
        self.started_at = started_at.isoformat()
        self.active_every = max(1, round(1 / ACTIVE)) if ACTIVE > 0 else 0
        self.origin = 0.0

    def active(self, index: int) -> bool:
        """Whether the org at ``index`` reports a moved request counter every time."""
        return bool(self.active_every) and index % self.active_every == 0

    def _body(self, k: int) -> tuple[str, bytes]:
        index = k % len(self.org_ids)
        org_id, beat = self.org_ids[index], k // len(self.org_ids)
        requests = beat if self.active(index) else 0
        return org_id, msgspec.json.encode(
            {
                "org_id": org_id,
                "instance_id": "bench",
                "version": VERSION,
                "started_at": self.started_at,
                "status": "ok",
                "seq": beat + 1,
                "db_ok": True,
                "redis_ok": True,
                "usage": {**dict.fromkeys(COUNTERS, 0), "requests": requests},
                "config_version": 1,
            }
        )

    async def send(self, conn: Any, k: int) -> tuple[Any, bool]:
        """Send heartbeat ``k`` on ``conn`` (opened when None); (connection, succeeded)."""
        org_id, body = self._body(k)
        try:
            conn = conn or await connect(self.port)
            request = raw_request("POST", HEARTBEAT_PATH, self.credentials[org_id], body)
            status = await asyncio.wait_for(conn.request(request), 10)
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            return None, False
        return conn, status == 200

    async def close(self, conn: Any) -> None:
        conn.writer.close()

    async def run(self, *, first: int, count: int) -> Load:
        """Send heartbeats ``first`` .. ``first + count - 1``, each at its due time; those not
        sent within :data:`GRACE` seconds after the last one was due are counted as unsent."""
        load, numbers = Load(), iter(range(first, first + count))
        origin = self.origin = time.perf_counter() - first / self.rate
        deadline = origin + (first + count) / self.rate + GRACE

        async def worker() -> None:
            conn: Any = None
            for k in numbers:
                if time.perf_counter() > deadline:
                    load.unsent += 1
                    continue
                due = origin + k / self.rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    load.late_starts += delay < -0.1
                conn, ok = await self.send(conn, k)
                load.latencies_ms.append((time.perf_counter() - due) * 1000)
                load.errors += not ok
            if conn is not None:
                await self.close(conn)

        await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
        return load


class RedisHeartbeatLoad(HeartbeatLoad):
    """The same heartbeats left in Redis, as instances on the ``redis`` transport do."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Opened by :func:`_drive`, in the event loop of the run.
        self.redis: Any = None
        self.ttl = heartbeat_key_ttl(INTERVAL)
        #: When each active org's heartbeats were due, by seq: the recording delay's start.
        self.due_at: dict[tuple[str, int], float] = {}

    async def send(self, conn: Any, k: int) -> tuple[Any, bool]:
        org_id, body = self._body(k)
        if self.active(k % len(self.org_ids)):
            self.due_at[(org_id, k // len(self.org_ids) + 1)] = self.origin + k / self.rate
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.set(heartbeat_key(org_id), body, ex=self.ttl)
                pipe.get(heartbeat_answer_key(org_id))
                await asyncio.wait_for(pipe.execute(), 10)
        except (RedisError, OSError, TimeoutError):
            return None, False
        return None, True

    async def close(self, conn: Any) -> None:
        return None
