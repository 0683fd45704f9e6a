"""Token exchange latency (in-process and over HTTP on loopback) and verifications per second.

* In-process: ``exchange_token`` called directly on a SQLite database, one session per call
  (as a request gets), timed around session and exchange.
* HTTP: ``POST /oauth/token`` to an ``orgplane serve`` process on 127.0.0.1, one keep-alive
  client, sequential requests.
* Verification: one process, one thread, PyJWT ES256: the bare signature and claims check,
  ``verify_access_token`` (key lookup through the key ring's cache included), and the org
  instance's verifier (``org_instance.verifier.JWKSVerifier``) doing its full check of an org
  token (header checks, cached JWKS key, signature, claims; the memory of tokens it verified
  before is bypassed, so this is the cost of a token it sees for the first time). "Per core" is
  verifications per CPU-second of that thread (``time.process_time``), so a machine shared
  with other work still measures what one core does; the wall-clock rate is shown beside it.

The 1-minute load average at the start is recorded: on a busy machine wall-clock latencies
include waiting for a core.

``BENCH_TOKENS_N`` sets the number of exchanges (default 2,000) for both exchange figures.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from benchmarks import Result
from control_plane.auth import verify_access_token
from control_plane.bootstrap import prepare_database
from control_plane.db.models import Membership, Org
from control_plane.runtime import Runtime
from control_plane.settings import Settings
from control_plane.signing.jws import unverified_kid, verify
from control_plane.tokens.access import login_tokens
from control_plane.tokens.exchange import ExchangeRequest, exchange_token
from control_plane.tokens.grants import ACCESS_TOKEN_TYPE, TOKEN_EXCHANGE_GRANT
from control_plane.users.service import create_user
from org_instance.verifier import JWKSVerifier

EXCHANGES = int(os.environ.get("BENCH_TOKENS_N", "2000"))
WARMUP = 100
VERIFY_SECONDS = 3.0
SECRET = "benchmark-deployment-secret"


@contextmanager
def _environment(data_dir: Path) -> Iterator[dict[str, str]]:
    env = {
        "ORGPLANE_MODE": "embedded",
        "ORGPLANE_DATA_DIR": str(data_dir),
        "ORGPLANE_DATABASE_URL": f"sqlite+aiosqlite:///{data_dir / 'bench.db'}",
        "ORGPLANE_SECRET_KEY": SECRET,
        "ORGPLANE_LOG_LEVEL": "WARNING",
        "ORGPLANE_RECONCILER_ENABLED": "false",
    }
    saved = {k: v for k, v in os.environ.items() if k.startswith("ORGPLANE_")}
    for key in saved:
        del os.environ[key]
    os.environ.update(env)
    try:
        yield env
    finally:
        for key in env:
            os.environ.pop(key, None)
        os.environ.update(saved)


def _percentiles(samples_ms: list[float]) -> tuple[float, float]:
    ordered = sorted(samples_ms)
    cut = statistics.quantiles(ordered, n=100, method="inclusive")
    return cut[49], cut[98]


async def _seed(runtime: Runtime) -> str:
    """A member of org ``bench``; answers their access token."""
    await prepare_database(runtime)
    async with runtime.sessions() as db:
        user = await create_user(db, email="bench@example.com", password="benchmark password")
        org = Org(slug="bench", name="Bench", features={"beta_search": True})
        db.add(org)
        await db.flush()
        db.add(Membership(user_id=user.id, org_id=org.id, role="member"))
        await db.commit()
        return (await login_tokens(runtime, db, user)).access_token


async def _in_process(runtime: Runtime, access: str) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU milliseconds of each exchange.

    CPU time (every thread of the process: the event loop and aiosqlite's) is what an exchange
    costs; wall-clock adds the time spent waiting for a core on a busy machine.
    """
    request = ExchangeRequest(
        subject_token=access, subject_token_type=ACCESS_TOKEN_TYPE, audience=("org:bench",)
    )
    wall: list[float] = []
    cpu: list[float] = []
    for n in range(WARMUP + EXCHANGES):
        cpu_started, started = time.process_time(), time.perf_counter()
        async with runtime.sessions() as db:
            await exchange_token(runtime, db, request=request)
        if n >= WARMUP:
            wall.append((time.perf_counter() - started) * 1000)
            cpu.append((time.process_time() - cpu_started) * 1000)
    return wall, cpu


def _rates(count: int, cpu_started: float, wall_started: float) -> tuple[float, float]:
    return (
        count / (time.process_time() - cpu_started),
        count / (time.perf_counter() - wall_started),
    )


def _bare_verify_rates(runtime: Runtime, access: str) -> tuple[float, float]:
    public = runtime.keyring.public_key_for(unverified_kid(access), runtime.keyring._rows)
    count, deadline = 0, time.perf_counter() + VERIFY_SECONDS
    cpu_started, wall_started = time.process_time(), time.perf_counter()
    while time.perf_counter() < deadline:
        for _ in range(100):
            verify(access, public, issuer=runtime.issuer, audience=runtime.audience)
        count += 100
    return _rates(count, cpu_started, wall_started)


async def _full_verify_rates(runtime: Runtime, access: str) -> tuple[float, float]:
    async with runtime.sessions() as db:
        await verify_access_token(access, runtime=runtime, db=db)
        count, deadline = 0, time.perf_counter() + VERIFY_SECONDS
        cpu_started, wall_started = time.process_time(), time.perf_counter()
        while time.perf_counter() < deadline:
            for _ in range(100):
                await verify_access_token(access, runtime=runtime, db=db)
            count += 100
    return _rates(count, cpu_started, wall_started)


async def _instance_verify_rates(runtime: Runtime, access: str) -> tuple[float, float]:
    """The org instance's verifier (``org_instance.verifier``) on org tokens it has not seen:
    the full check every time (the memory of verified tokens is bypassed), keys from the
    control plane's JWKS served by a mock transport (fetched once, then cached)."""
    request = ExchangeRequest(
        subject_token=access, subject_token_type=ACCESS_TOKEN_TYPE, audience=("org:bench",)
    )
    async with runtime.sessions() as db:
        exchanged = await exchange_token(runtime, db, request=request)
        document = await runtime.keyring.jwks(db)
    claims = exchanged.claims
    http = httpx.AsyncClient(
        transport=httpx.MockTransport(lambda _: httpx.Response(200, json=document))
    )
    verifier = JWKSVerifier(
        jwks_url="http://control-plane.test/.well-known/jwks.json",
        issuer=claims["iss"],
        audience=claims["aud"],
        org_id=claims["org_id"],
        http=http,
    )
    token = exchanged.access_token
    try:
        await verifier.verify(token)  # fetches the JWKS once
        count, deadline = 0, time.perf_counter() + VERIFY_SECONDS
        cpu_started, wall_started = time.process_time(), time.perf_counter()
        while time.perf_counter() < deadline:
            for _ in range(100):
                await verifier._verify_fully(token)
            count += 100
        return _rates(count, cpu_started, wall_started)
    finally:
        await http.aclose()


def _over_http(url: str, access: str) -> list[float]:
    form = {
        "grant_type": TOKEN_EXCHANGE_GRANT,
        "subject_token": access,
        "subject_token_type": ACCESS_TOKEN_TYPE,
        "audience": "org:bench",
    }
    samples: list[float] = []
    with httpx.Client(base_url=url, timeout=10.0) as client:
        for n in range(WARMUP + EXCHANGES):
            started = time.perf_counter()
            answer = client.post("/oauth/token", data=form)
            elapsed = (time.perf_counter() - started) * 1000
            if answer.status_code != 200:
                raise RuntimeError(f"exchange failed: {answer.text}")
            if n >= WARMUP:
                samples.append(elapsed)
    return samples


def run() -> list[Result]:
    """Measure and answer the figures (see the module docstring)."""
    from tests.interop.servers import control_plane_process

    load = os.getloadavg()[0]
    with (
        tempfile.TemporaryDirectory(prefix="orgplane-bench-") as tmp,
        _environment(Path(tmp)) as env,
    ):

        async def measure() -> tuple[Any, ...]:
            runtime = Runtime.build(Settings())
            try:
                access = await _seed(runtime)
                local, cpu_ms = await _in_process(runtime, access)
                bare = _bare_verify_rates(runtime, access)
                full = await _full_verify_rates(runtime, access)
                instance = await _instance_verify_rates(runtime, access)
                return local, cpu_ms, bare, full, instance
            finally:
                await runtime.close()

        local, cpu_ms, bare, full, instance = asyncio.run(measure())
        with control_plane_process(env, log=Path(tmp) / "server.log") as url:
            # The process has its own issuer (its URL): log in there for a token it accepts.
            login = httpx.post(
                f"{url}/api/v1/auth/login",
                json={"email": "bench@example.com", "password": "benchmark password"},
                timeout=30,
            )
            remote = _over_http(url, login.json()["access_token"])

    p50, p99 = _percentiles(local)
    c50, c99 = _percentiles(cpu_ms)
    h50, h99 = _percentiles(remote)
    return [
        Result("load average (1 min) at start, 2 cores shared", load, "load"),
        Result(f"exchange in-process p50 (n={len(local)})", p50, "ms"),
        Result(f"exchange in-process p99 (n={len(local)})", p99, "ms", "< 10 ms", p99 < 10),
        Result("exchange in-process CPU time p50", c50, "ms"),
        Result("exchange in-process CPU time p99", c99, "ms", "< 10 ms", c99 < 10),
        Result(f"exchange over HTTP p50 (n={len(remote)})", h50, "ms"),
        Result(f"exchange over HTTP p99 (n={len(remote)})", h99, "ms"),
        Result("exchange over HTTP, sequential", 1000 / statistics.mean(remote), "req/s"),
        Result(
            "instance verifier, full check (ES256) per core",
            instance[0],
            "verify/s",
            ">= 6,000/s per core",
            instance[0] >= 6000,
        ),
        Result("instance verifier, full check (ES256) wall clock", instance[1], "verify/s"),
        Result("verify (PyJWT ES256) per core", bare[0], "verify/s"),
        Result("verify (PyJWT ES256) wall clock", bare[1], "verify/s"),
        Result("verify_access_token incl. key lookup per core", full[0], "verify/s"),
        Result("verify_access_token incl. key lookup wall clock", full[1], "verify/s"),
    ]
