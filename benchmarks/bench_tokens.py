"""Token exchange latency (in-process and over HTTP on loopback) and verifications per second.

* In-process: ``exchange_token`` called directly on a SQLite database, one session per call
  (as a request gets), timed around session and exchange.
* HTTP: ``POST /oauth/token`` to an ``orgplane serve`` process on 127.0.0.1, one keep-alive
  client, sequential requests.
* Verification: one process, one thread, PyJWT ES256: the bare signature and claims check, and
  ``verify_access_token`` (key lookup through the key ring's cache included).

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

import httpx

from benchmarks import Result
from control_plane.auth import verify_access_token
from control_plane.bootstrap import prepare_database
from control_plane.db.models import Membership, Org
from control_plane.identity.users import create_user
from control_plane.runtime import Runtime
from control_plane.settings import Settings
from control_plane.tokens.access import login_tokens
from control_plane.tokens.exchange import ExchangeRequest, exchange_token
from control_plane.tokens.grants import ACCESS_TOKEN_TYPE, TOKEN_EXCHANGE_GRANT
from control_plane.tokens.jws import unverified_kid, verify

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


async def _in_process(runtime: Runtime, access: str) -> tuple[list[float], float, float]:
    request = ExchangeRequest(subject_token=access, subject_token_type=ACCESS_TOKEN_TYPE,
                              audience=("org:bench",))
    samples: list[float] = []
    for n in range(WARMUP + EXCHANGES):
        started = time.perf_counter()
        async with runtime.sessions() as db:
            await exchange_token(runtime, db, request=request)
        if n >= WARMUP:
            samples.append((time.perf_counter() - started) * 1000)
    verify_rate = await _verify_access_rate(runtime, access)
    return samples, _bare_verify_rate(runtime, access), verify_rate


def _bare_verify_rate(runtime: Runtime, access: str) -> float:
    public = runtime.keyring.public_key_for(unverified_kid(access), runtime.keyring._rows)
    count, deadline = 0, time.perf_counter() + VERIFY_SECONDS
    started = time.perf_counter()
    while time.perf_counter() < deadline:
        for _ in range(100):
            verify(access, public, issuer=runtime.issuer, audience=runtime.audience)
        count += 100
    return count / (time.perf_counter() - started)


async def _verify_access_rate(runtime: Runtime, access: str) -> float:
    async with runtime.sessions() as db:
        await verify_access_token(access, runtime=runtime, db=db)
        count, deadline = 0, time.perf_counter() + VERIFY_SECONDS
        started = time.perf_counter()
        while time.perf_counter() < deadline:
            for _ in range(100):
                await verify_access_token(access, runtime=runtime, db=db)
            count += 100
    return count / (time.perf_counter() - started)


def _over_http(url: str, access: str) -> list[float]:
    form = {"grant_type": TOKEN_EXCHANGE_GRANT, "subject_token": access,
            "subject_token_type": ACCESS_TOKEN_TYPE, "audience": "org:bench"}
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

    with tempfile.TemporaryDirectory(prefix="orgplane-bench-") as tmp, _environment(Path(tmp)) as env:

        async def measure() -> tuple[str, list[float], float, float]:
            runtime = Runtime.build(Settings())
            try:
                access = await _seed(runtime)
                return access, *(await _in_process(runtime, access))
            finally:
                await runtime.close()

        access, local, bare_rate, full_rate = asyncio.run(measure())
        with control_plane_process(env, log=Path(tmp) / "server.log") as url:
            # The process has its own issuer (its URL): log in there for a token it accepts.
            login = httpx.post(f"{url}/api/v1/auth/login", json={
                "email": "bench@example.com", "password": "benchmark password"}, timeout=30)
            remote = _over_http(url, login.json()["access_token"])

    p50, p99 = _percentiles(local)
    h50, h99 = _percentiles(remote)
    return [
        Result(f"exchange in-process p50 (n={len(local)})", p50, "ms"),
        Result(f"exchange in-process p99 (n={len(local)})", p99, "ms", "< 10 ms", p99 < 10),
        Result(f"exchange over HTTP p50 (n={len(remote)})", h50, "ms"),
        Result(f"exchange over HTTP p99 (n={len(remote)})", h99, "ms"),
        Result("exchange over HTTP, sequential", 1000 / statistics.mean(remote), "req/s"),
        Result("access-token verification (PyJWT ES256), 1 core", bare_rate, "verify/s",
               ">= 5,000/s", bare_rate >= 5000),
        Result("verify_access_token incl. key lookup, 1 core", full_rate, "verify/s",
               ">= 5,000/s", full_rate >= 5000),
    ]
