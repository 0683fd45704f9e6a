"""Heartbeat ingestion: 10,000 org instances heartbeating every 10 s against one control plane.

Two transports (``BENCH_HEARTBEATS_TRANSPORT``, ``redis`` by default when Redis answers):

* ``redis``, the product's default: the load generator leaves each heartbeat where an instance
  does after its first ``POST`` (``SET`` of its heartbeat key and ``GET`` of its answer key in
  one round trip; through the admin connection, not 10,000 ACL users) and the control plane's
  reader takes them in batches (``control_plane/instances/ingest.py``, default 2 s poll).
  Latency is then twofold: the round trip an instance waits for, and the *recording delay* of
  the heartbeats that change something (the active orgs'), from the moment one is due until
  its ``seq`` is in the Instance row (sampled every 0.25 s). Redis's own CPU share is reported
  beside the control plane's.
* ``http``: every heartbeat is a ``POST``, as below.

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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import msgspec
import redis.asyncio as aioredis
from sqlalchemy import text

from benchmarks import Result, rss_bytes
from benchmarks.heartbeat_load import (
    ACTIVE,
    COUNTERS,
    INTERVAL,
    VERSION,
    HeartbeatLoad,
    Load,
    RedisHeartbeatLoad,
)
from benchmarks.instance_loopback import free_port
from benchmarks.scratch import engine_on, missing_services, scratch_postgres_sync, seed_orgs
from orgplane_wire.contract import heartbeat_answer_key, heartbeat_key
from tests.support.services import REDIS_URL, redis_available

ORGS = int(os.environ.get("BENCH_HEARTBEATS_ORGS", "10000"))
SECONDS = float(os.environ.get("BENCH_HEARTBEATS_SECONDS", "60"))
STORE = os.environ.get("BENCH_HEARTBEATS_STORE", "redis" if redis_available() else "memory")
TRANSPORT = os.environ.get("BENCH_HEARTBEATS_TRANSPORT", "redis" if STORE == "redis" else "http")
#: The reader's poll (the product's default ``heartbeat_poll_seconds``).
POLL = 2.0
TICKS = os.sysconf("SC_CLK_TCK")
SLOW = f"{ORGS:,} orgs seeded and {SECONDS:.0f} s of load"


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


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


async def _recording_delays(url: str, load: RedisHeartbeatLoad, until: float) -> list[float]:
    """Sample the active orgs' rows every 0.25 s until ``until`` (perf_counter): the delay from
    each heartbeat's due time to the first sample showing its ``seq`` recorded."""
    active = load.org_ids[:: load.active_every] if load.active_every else []
    recorded: dict[str, int] = {}
    delays: list[float] = []
    query = text("SELECT org_id, last_heartbeat_seq FROM instance WHERE org_id = ANY(:ids)")
    async with engine_on(url) as engine, engine.connect() as conn:
        while time.perf_counter() < until:
            now = time.perf_counter()
            for org_id, seq in await conn.execute(query, {"ids": active}):
                for s in range(recorded.get(org_id, seq) + 1, seq + 1):
                    due = load.due_at.get((org_id, s))
                    if due is not None:
                        delays.append((now - due) * 1000)
                recorded[org_id] = seq
            await asyncio.sleep(0.25)
    return delays


def _redis_cpu_seconds() -> float:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        info = client.info("cpu")
    finally:
        client.close()
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def _start_server(database_url: str, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ORGPLANE_")},
        "ORGPLANE_MODE": "production",
        "ORGPLANE_DATABASE_URL": database_url,
        "ORGPLANE_SECRET_KEY": "benchmark-deployment-secret-heartbeats",
        "ORGPLANE_REDIS_URL": REDIS_URL if STORE == "redis" else "",
        "ORGPLANE_REDIS_ORG_USERS": "true" if TRANSPORT == "redis" else "false",
        "ORGPLANE_HEARTBEAT_TRANSPORT": TRANSPORT,
        "ORGPLANE_RECONCILER_ENABLED": "false",
        "ORGPLANE_HEARTBEAT_INTERVAL": str(INTERVAL),
        "ORGPLANE_LOG_LEVEL": "WARNING",
        "ORGPLANE_HOST": "127.0.0.1",
        "ORGPLANE_PORT": str(port),
        "ORGPLANE_PUBLIC_URL": f"http://127.0.0.1:{port}",
    }
    with log.open("ab") as out:
        profile = os.environ.get("BENCH_HEARTBEATS_PROFILE", "")
        profiler = ["-m", "cProfile", "-o", profile] if profile else []
        proc = subprocess.Popen(
            [sys.executable, *profiler, "-m", "control_plane.cli.main", "serve"],
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


@dataclass
class Run:
    """One measured load: what the generator saw and what the server spent meanwhile."""

    load: Load
    cpu: float
    wall: float
    share: float
    delays: list[float]


async def _drive(load: HeartbeatLoad, pid: int, url: str, count: int) -> Run:
    """Run the load (and, over Redis, the recording sampler); the server's CPU is read when
    the load ends."""
    cpu_before, wall_before = _cpu_seconds(pid), time.perf_counter()
    sampler = None
    if isinstance(load, RedisHeartbeatLoad):
        load.redis = aioredis.from_url(REDIS_URL)
        until = wall_before + count / load.rate + 3 * POLL + 1
        sampler = asyncio.create_task(_recording_delays(url, load, until))
    measured = await load.run(first=ORGS, count=count)  # seq 2 onwards
    wall = time.perf_counter() - wall_before
    cpu = _cpu_seconds(pid) - cpu_before
    delays = await sampler if sampler is not None else []
    if isinstance(load, RedisHeartbeatLoad):
        await load.redis.aclose()
    return Run(measured, cpu, wall, cpu / wall, delays)


async def _answered_already(org_ids: list[str]) -> None:
    """Every org's answer key, as the first POST of each run left it (the steady state)."""
    redis = aioredis.from_url(REDIS_URL)
    answer = msgspec.json.encode(
        {"accepted": True, "config_version": 1, "interval": INTERVAL, "limits": {}, "via": "redis"}
    )
    async with redis.pipeline(transaction=False) as pipe:
        for org_id in org_ids:
            pipe.set(heartbeat_answer_key(org_id), answer, ex=int(4 * INTERVAL + 10))
        await pipe.execute()
    await redis.aclose()


async def _forget(org_ids: list[str]) -> None:
    redis = aioredis.from_url(REDIS_URL)
    for i in range(0, len(org_ids), 1000):
        chunk = org_ids[i : i + 1000]
        await redis.delete(*[k for o in chunk for k in (heartbeat_key(o), heartbeat_answer_key(o))])
    await redis.aclose()


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
    redis = TRANSPORT == "redis"
    try:
        kind = RedisHeartbeatLoad if redis else HeartbeatLoad
        load = kind(port, seeded.org_ids, seeded.credentials, started_at=started_at)
        asyncio.run(_heard_just_now(url))
        if redis:
            asyncio.run(_answered_already(seeded.org_ids))
        updates_before = asyncio.run(_instance_row_updates(url))
        redis_cpu_before = _redis_cpu_seconds() if redis else 0.0
        count = int(SECONDS * load.rate)
        run = asyncio.run(_drive(load, proc.pid, url, count))
        measured, cpu, share, delays = run.load, run.cpu, run.share, run.delays
        redis_share = (_redis_cpu_seconds() - redis_cpu_before) / run.wall if redis else 0.0
        time.sleep(1)
        writes = asyncio.run(_instance_row_updates(url)) - updates_before
        rss = rss_bytes(proc.pid) / 2**20
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        if redis:
            asyncio.run(_forget(seeded.org_ids))
    answered = max(1, len(measured.latencies_ms))
    per_beat = cpu / answered
    label = (
        f"{load.rate:,.0f}/s offered ({ORGS:,} orgs / {INTERVAL:g} s), via {TRANSPORT}, "
        f"store {STORE}"
    )
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
        *(
            [
                Result.distribution(
                    "recording delay of changed heartbeats (due to in the row; 2 s poll)",
                    delays,
                    "ms",
                ),
                Result(
                    "Redis server CPU share (generator's writes and the reader)",
                    redis_share * 100,
                    "% core",
                ),
            ]
            if TRANSPORT == "redis"
            else []
        ),
    ]


def run() -> list[Result]:
    """Measure and answer the figures (see the module docstring)."""
    missing = missing_services(redis=STORE == "redis" or TRANSPORT == "redis")
    if missing:
        return [Result.skip("heartbeat ingestion", missing)]
    with (
        tempfile.TemporaryDirectory(prefix="orgplane-bench-hb-") as tmp,
        scratch_postgres_sync() as url,
    ):
        return _measure(url, Path(tmp))
