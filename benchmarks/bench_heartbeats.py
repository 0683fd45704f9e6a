"""Heartbeat ingestion: 10,000 org instances heartbeating every 10 s against one control plane.

One control-plane process (``orgplane serve``, one uvicorn worker, production mode, reconciler
off so it does not try to start 10,000 instances) on a scratch PostgreSQL database holding
``BENCH_HEARTBEATS_ORGS`` (default 10,000) running orgs with Instance rows and credentials,
inserted directly as a control plane that has heard them before has them (the run the load
generator reports is already recorded, the last heartbeat was just written): the steady state.
Its rate-limit store is Redis when Redis answers, as with several replicas
(``BENCH_HEARTBEATS_STORE=memory`` for the in-process store).

The load generator (this process, a minimal asyncio HTTP/1.1 client on keep-alive connections)
sends each org's heartbeat once per ``BENCH_HEARTBEATS_INTERVAL`` (default 10 s), spread evenly:
1,000 heartbeats/s. It is open-loop: heartbeat *k* is due at ``k / rate`` whatever the answers
before it did, and its latency is counted from that moment, so a slow server shows as latency
rather than as a lower rate; heartbeats not sent 10 s after the last one was due are counted
as unsent (the bound of the run). ``BENCH_HEARTBEATS_SECONDS`` (default 60) are measured:

* the server's CPU share (``/proc/<pid>/stat`` utime + stime over wall time; 1.0 is a core);
* heartbeat latency p50/p95/p99 and errors (any answer but 200 ``accepted: true``);
* Instance row writes per heartbeat (PostgreSQL's ``n_tup_upd`` of the table), which shows the
  coalescing of unchanged heartbeats (see ``control_plane/instances/heartbeat.py``).

``BENCH_HEARTBEATS_ACTIVE`` (default 0.05) is the share of orgs whose request counter moves
between heartbeats (their heartbeats always write); the others are idle.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import msgspec
from sqlalchemy import text

from benchmarks import Result
from benchmarks.instance_loopback import Connection, connect, free_port, raw_request
from benchmarks.scratch import engine_on, missing_services, scratch_postgres_sync, seed_orgs
from org_instance.contract import HEARTBEAT_PATH
from tests.support.services import REDIS_URL, redis_available

ORGS = int(os.environ.get("BENCH_HEARTBEATS_ORGS", "10000"))
INTERVAL = float(os.environ.get("BENCH_HEARTBEATS_INTERVAL", "10"))
SECONDS = float(os.environ.get("BENCH_HEARTBEATS_SECONDS", "60"))
ACTIVE = float(os.environ.get("BENCH_HEARTBEATS_ACTIVE", "0.05"))
STORE = os.environ.get("BENCH_HEARTBEATS_STORE", "redis" if redis_available() else "memory")
CONNECTIONS = 64
#: Seconds after the last heartbeat was due before the rest are given up (the bound of a run).
GRACE = 10.0
TICKS = os.sysconf("SC_CLK_TCK")
SLOW = f"{ORGS:,} orgs seeded and {SECONDS:.0f} s of load"
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


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def _heard_just_now(url: str) -> None:
    """Every instance's last heartbeat written now with the version it reports, as when the
    load starts in a steady state."""
    async with engine_on(url) as engine, engine.begin() as conn:
        await conn.execute(
            text("UPDATE instance SET last_heartbeat_at = now(), version = :version"),
            {"version": VERSION},
        )


async def _instance_row_updates(url: str) -> int:
    async with engine_on(url) as engine, engine.connect() as conn:
        await conn.execute(text("SELECT pg_stat_force_next_flush()"))
        value = await conn.scalar(
            text("SELECT n_tup_upd FROM pg_stat_user_tables WHERE relname = 'instance'")
        )
        return int(value or 0)


class HeartbeatLoad:
    """Paced heartbeats of many orgs over a pool of keep-alive connections."""

    def __init__(
        self, port: int, org_ids: list[str], credentials: dict[str, str], *, started_at: datetime
    ) -> None:
        self.port, self.org_ids, self.credentials = port, org_ids, credentials
        self.rate = len(org_ids) / INTERVAL
        self.started_at = started_at.isoformat()
        self.active_every = max(1, round(1 / ACTIVE)) if ACTIVE > 0 else 0

    def _request(self, k: int) -> bytes:
        index = k % len(self.org_ids)
        org_id, beat = self.org_ids[index], k // len(self.org_ids)
        requests = beat if self.active_every and index % self.active_every == 0 else 0
        body = msgspec.json.encode(
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
            }
        )
        return raw_request("POST", HEARTBEAT_PATH, self.credentials[org_id], body)

    async def run(self, *, first: int, count: int) -> Load:
        """Send heartbeats ``first`` .. ``first + count - 1``, each at its due time; those not
        sent within :data:`GRACE` seconds after the last one was due are counted as unsent."""
        load, numbers = Load(), iter(range(first, first + count))
        origin = time.perf_counter() - first / self.rate
        deadline = origin + (first + count) / self.rate + GRACE

        async def worker() -> None:
            conn: Connection | None = None
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
                try:
                    conn = conn or await connect(self.port)
                    status = await asyncio.wait_for(conn.request(self._request(k)), 10)
                except (OSError, asyncio.IncompleteReadError, TimeoutError):
                    conn, status = None, 0
                load.latencies_ms.append((time.perf_counter() - due) * 1000)
                load.errors += status != 200
            if conn is not None:
                conn.writer.close()

        await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
        return load


def _start_server(database_url: str, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ORGPLANE_")},
        "ORGPLANE_MODE": "production",
        "ORGPLANE_DATABASE_URL": database_url,
        "ORGPLANE_SECRET_KEY": "benchmark-deployment-secret-heartbeats",
        "ORGPLANE_REDIS_URL": REDIS_URL if STORE == "redis" else "",
        "ORGPLANE_REDIS_ORG_USERS": "false",
        "ORGPLANE_RECONCILER_ENABLED": "false",
        "ORGPLANE_HEARTBEAT_INTERVAL": str(INTERVAL),
        "ORGPLANE_LOG_LEVEL": "WARNING",
        "ORGPLANE_HOST": "127.0.0.1",
        "ORGPLANE_PORT": str(port),
        "ORGPLANE_PUBLIC_URL": f"http://127.0.0.1:{port}",
    }
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "control_plane.cli.main", "serve"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc, port
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    proc.wait(5)
    raise RuntimeError(f"control plane did not start:\n{log.read_text()[-2000:]}")


def _measure(url: str, tmp: Path) -> list[Result]:
    started_at = datetime.now(UTC)
    # What control_plane.instances.heartbeat records for a run it has heard (see its docstring).
    known_run = {
        "run": f"bench/{started_at.isoformat()}",
        "started_at": started_at.isoformat(),
        "counters": dict.fromkeys(COUNTERS, 0),
    }
    started = time.perf_counter()
    seeded = asyncio.run(seed_orgs(url, count=ORGS, instances=True, usage_reported=known_run))
    seeding = time.perf_counter() - started
    proc, port = _start_server(url, tmp / "server.log")
    try:
        load = HeartbeatLoad(port, seeded.org_ids, seeded.credentials, started_at=started_at)
        asyncio.run(_heard_just_now(url))
        updates_before = asyncio.run(_instance_row_updates(url))
        cpu_before, wall_before = _cpu_seconds(proc.pid), time.perf_counter()
        count = int(SECONDS * load.rate)
        measured = asyncio.run(load.run(first=ORGS, count=count))  # seq 2 onwards
        cpu = _cpu_seconds(proc.pid) - cpu_before
        share = cpu / (time.perf_counter() - wall_before)
        time.sleep(1)
        writes = asyncio.run(_instance_row_updates(url)) - updates_before
        rss = _rss_mib(proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    answered = max(1, len(measured.latencies_ms))
    per_beat = cpu / answered
    label = f"{load.rate:,.0f}/s offered ({ORGS:,} orgs / {INTERVAL:g} s), store {STORE}"
    return [
        Result(f"seeding {ORGS:,} orgs with instances", seeding, "s"),
        Result(f"control-plane CPU share, measured, {label}", share * 100, "% core"),
        Result("control-plane CPU per heartbeat answered", per_beat * 1000, "ms"),
        Result(
            f"CPU share {load.rate:,.0f} heartbeats/s need (rate x CPU per heartbeat)",
            per_beat * load.rate * 100,
            "% core",
            "<= 20% of a core",
            per_beat * load.rate <= 0.20,
        ),
        Result.distribution(f"heartbeat latency, {label}", measured.latencies_ms, "ms"),
        Result(
            f"heartbeats failed (non-200, no answer) or unsent, of {count:,}",
            measured.errors + measured.unsent,
            "count",
            "0",
            measured.errors + measured.unsent == 0,
        ),
        Result("heartbeats sent over 0.1 s late (generator behind)", measured.late_starts, "count"),
        Result(
            f"Instance row writes per heartbeat answered ({ACTIVE:.0%} of orgs active)",
            writes / answered,
            "writes",
        ),
        Result("control-plane RSS after the load", rss, "MiB"),
    ]


def run() -> list[Result]:
    """Measure and answer the figures (see the module docstring)."""
    missing = missing_services(redis=STORE == "redis")
    if missing:
        return [Result.skip("heartbeat ingestion", missing)]
    with (
        tempfile.TemporaryDirectory(prefix="orgplane-bench-hb-") as tmp,
        scratch_postgres_sync() as url,
    ):
        return _measure(url, Path(tmp))
