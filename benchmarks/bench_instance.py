"""Org instance: cold start to ready, authorized GET throughput and p99 on one worker, idle RSS.

* Cold start: ``python -m org_instance`` from process start to the first 200 on ``/readyz``
  (fresh data directory each time, so the database is created and migrated), and to the first
  heartbeat received by a stand-in control plane. Median of ``BENCH_INSTANCE_STARTS`` (default
  10) starts, measured twice: with compiled bytecode (what a built image or an installed wheel
  has; a private ``PYTHONPYCACHEPREFIX`` is warmed by one discarded start) and without any
  (an empty ``PYTHONPYCACHEPREFIX`` and ``PYTHONDONTWRITEBYTECODE``: every import compiles,
  the worst case, as on a development machine that never wrote its bytecode).
  Besides wall-clock time, the CPU time the process used until it was ready (``/proc``
  utime + stime): on a shared machine the wall clock mostly measures waiting for a core, the
  CPU time is what the start costs. ``BENCH_INSTANCE_UNCOMPILED_STARTS`` (default: as many)
  sets the starts without bytecode; 0 leaves them out.
* Throughput: one instance (one uvicorn worker), ``GET /api/v1/sessions?limit=20`` with a
  Bearer org token, 20 sessions in the database. A bounded load of
  ``BENCH_INSTANCE_REQUESTS`` (default 5,000) requests from 16 concurrent keep-alive
  connections, plus 500 sequential requests for unloaded latency. The load generator is a
  minimal asyncio HTTP/1.1 client (so it takes little of the shared cores); the server's CPU
  time during the load gives requests per CPU-second, the figure that does not depend on how
  busy the machine is. The client reuses its token, as clients do: the verifier checks its
  signature once and remembers it (see ``org_instance/verifier.py``).
* Idle RSS of that instance after the load, once it has been idle for a second; and the RSS and
  USS (private pages) of each compiled cold start, one second after its first heartbeat, before
  any request (what an org that nobody uses costs).

The stand-in control plane is a stdlib HTTP server on 127.0.0.1 serving the JWKS and
answering heartbeats. All traffic stays on loopback.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks import Result, rss_bytes, uss_bytes
from benchmarks.instance_loopback import (
    Connection,
    StandInControlPlane,
    connect,
    free_port,
    raw_request,
)

STARTS = int(os.environ.get("BENCH_INSTANCE_STARTS", "10"))
UNCOMPILED_STARTS = int(os.environ.get("BENCH_INSTANCE_UNCOMPILED_STARTS", str(STARTS)))
REQUESTS = int(os.environ.get("BENCH_INSTANCE_REQUESTS", "5000"))
TICKS = os.sysconf("SC_CLK_TCK")
CONCURRENCY = 16
SEQUENTIAL = 500
READY_TIMEOUT = 30.0
REPO = Path(__file__).resolve().parents[1]


def _env(
    cp: StandInControlPlane, org_id: str, data_dir: Path, port: int, *, pycache: Path | None
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORGPLANE_")}
    if pycache is None:
        # An empty, unwritable cache location: nothing is read from __pycache__ directories
        # someone may have created, nothing is written, every import compiles.
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env["PYTHONPYCACHEPREFIX"] = str(data_dir.parent / "no-pycache")
    else:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    env.update(
        ORGPLANE_ORG_ID=org_id,
        ORGPLANE_ORG_SLUG="bench",
        ORGPLANE_INSTANCE_CREDENTIAL=f"opi_{org_id}.benchmark-credential-0123456789",
        ORGPLANE_CONTROL_PLANE_URL=cp.url,
        ORGPLANE_DATA_DIR=str(data_dir),
        ORGPLANE_BIND_HOST="127.0.0.1",
        ORGPLANE_PORT=str(port),
        ORGPLANE_LOG_FORMAT="json",
        ORGPLANE_HEARTBEAT_INTERVAL="10",
    )
    return env


def _ready(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as conn:
            conn.sendall(b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return conn.recv(16).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def _start(
    cp: StandInControlPlane, root: Path, *, pycache: Path | None
) -> tuple[subprocess.Popen[bytes], str, int, float, float, float]:
    """One instance: (process, org id, port, s to ready, CPU s to ready, s to first beat)."""
    org_id, port = uuid.uuid4().hex, free_port()
    data_dir = root / org_id
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "org_instance"],
        cwd=REPO,
        env=_env(cp, org_id, data_dir, port, pycache=pycache),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while not _ready(port):
        if proc.poll() is not None or time.monotonic() - started > READY_TIMEOUT:
            proc.kill()
            raise RuntimeError("org instance did not become ready")
        time.sleep(0.002)
    ready = time.monotonic() - started
    cpu = _cpu_seconds(proc.pid)
    while org_id not in cp.first_beat and time.monotonic() - started < READY_TIMEOUT:
        time.sleep(0.002)
    beat = cp.first_beat.get(org_id, float("nan")) - started
    return proc, org_id, port, ready, cpu, beat


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _cold_starts(
    cp: StandInControlPlane, root: Path, *, pycache: Path | None, starts: int = STARTS
) -> dict[str, list[float]]:
    """Per start: s and CPU s to ready, s to first beat; compiled: CPU s at the first beat,
    and RSS and USS (MiB) one second later."""
    figures: dict[str, list[float]] = {k: [] for k in ("ready", "cpu", "beat", "beat_cpu")}
    figures.update(rss=[], uss=[])
    if pycache is not None:  # one discarded start compiles the bytecode
        _stop(_start(cp, root, pycache=pycache)[0])
    for _ in range(starts):
        proc, _, _, to_ready, cpu_to_ready, to_beat = _start(cp, root, pycache=pycache)
        try:
            if pycache is not None:
                figures["beat_cpu"].append(_cpu_seconds(proc.pid))
                time.sleep(1.0)
                figures["rss"].append(rss_bytes(proc.pid) / 2**20)
                figures["uss"].append(uss_bytes(proc.pid) / 2**20)
        finally:
            _stop(proc)
        figures["ready"].append(to_ready)
        figures["cpu"].append(cpu_to_ready)
        figures["beat"].append(to_beat)
    return figures


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


async def _load(port: int, pid: int, token: str) -> dict[str, Any]:
    """Sequential and concurrent latencies (ms), throughput and server CPU per request."""
    get = raw_request("GET", "/api/v1/sessions?limit=20", token)
    first = await connect(port)
    for _ in range(20):
        assert await first.request(raw_request("POST", "/api/v1/sessions", token, b"{}")) == 201
    for _ in range(100):  # warm-up
        assert await first.request(get) == 200
    sequential = []
    for _ in range(SEQUENTIAL):
        t0 = time.perf_counter()
        assert await first.request(get) == 200
        sequential.append((time.perf_counter() - t0) * 1000)
    connections = [first, *[await connect(port) for _ in range(CONCURRENCY - 1)]]
    loaded: list[float] = []
    remaining = REQUESTS

    async def worker(conn: Connection) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            t0 = time.perf_counter()
            assert await conn.request(get) == 200
            loaded.append((time.perf_counter() - t0) * 1000)

    cpu_before, started = _cpu_seconds(pid), time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(worker(c) for c in connections)), 600)
    elapsed, cpu = time.perf_counter() - started, _cpu_seconds(pid) - cpu_before
    for conn in connections:
        conn.writer.close()
    return {
        "rps": len(loaded) / elapsed,
        "loaded": loaded,
        "sequential": sequential,
        "cpu_per_request_ms": cpu / len(loaded) * 1000,
    }


def run() -> list[Result]:
    """Every figure of this benchmark."""
    load1 = os.getloadavg()[0]
    root = Path(tempfile.mkdtemp(prefix="bench-instance-"))
    pycache = root / "pycache"
    cp = StandInControlPlane()
    try:
        with cp.running():
            warm = _cold_starts(cp, root / "warm", pycache=pycache)
            cold = _cold_starts(cp, root / "cold", pycache=None, starts=UNCOMPILED_STARTS)
            proc, org_id, port, *_ = _start(cp, root / "load", pycache=pycache)
            try:
                load = asyncio.run(_load(port, proc.pid, cp.token(org_id)))
                time.sleep(1.0)
                rss = rss_bytes(proc.pid) / 2**20
            finally:
                _stop(proc)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    cpu = statistics.median(warm["cpu"])
    loaded, sequential = load["loaded"], load["sequential"]
    uncompiled = (
        []
        if not UNCOMPILED_STARTS
        else [
            Result(
                "cold start to ready, no bytecode: CPU time (median)",
                statistics.median(cold["cpu"]) * 1000,
                "ms",
            ),
            Result(
                "cold start to ready, no bytecode: wall clock (median)",
                statistics.median(cold["ready"]) * 1000,
                "ms",
            ),
        ]
    )
    return [
        Result(
            "cold start to ready, compiled: CPU time (median)",
            cpu * 1000,
            "ms",
            "< 1000 ms",
            cpu < 1.0,
        ),
        Result(
            "cold start to ready, compiled: wall clock (median)",
            statistics.median(warm["ready"]) * 1000,
            "ms",
        ),
        Result("cold start to ready, compiled: wall clock (min)", min(warm["ready"]) * 1000, "ms"),
        Result(
            "cold start to first heartbeat, compiled: wall (median)",
            statistics.median(warm["beat"]) * 1000,
            "ms",
        ),
        Result(
            "cold start to first heartbeat, compiled: CPU time (median)",
            statistics.median(warm["beat_cpu"]) * 1000,
            "ms",
        ),
        Result("fresh idle instance RSS (median)", statistics.median(warm["rss"]), "MiB"),
        Result("fresh idle instance USS (median)", statistics.median(warm["uss"]), "MiB"),
        *uncompiled,
        Result(f"authorized GET, {CONCURRENCY} connections", load["rps"], "req/s"),
        Result("authorized GET, server CPU per request", load["cpu_per_request_ms"], "ms"),
        Result("authorized GET per server CPU-second", 1000 / load["cpu_per_request_ms"], "req/s"),
        Result("authorized GET p50 under load", _percentile(loaded, 50), "ms"),
        Result("authorized GET p99 under load", _percentile(loaded, 99), "ms"),
        Result("authorized GET p50 sequential", _percentile(sequential, 50), "ms"),
        Result("authorized GET p99 sequential", _percentile(sequential, 99), "ms"),
        Result("idle RSS after load", rss, "MiB"),
        Result("load average (1 min) at start", load1, ""),
    ]


if __name__ == "__main__":
    for result in run():
        print(f"{result.metric:<52} {result.value:>10.2f} {result.unit:<6} {result.target}")
