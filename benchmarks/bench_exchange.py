"""Org switch (token exchange) on PostgreSQL: capacity, latency at half of it, and per core.

The control plane's app runs in this process on a scratch PostgreSQL database (one member of
org ``bench``) and ``POST /oauth/token`` (RFC 8693 exchange of the member's access token for an
``org:bench`` token) is called through the ASGI interface directly (no network, no HTTP
client: the process's CPU time is the server's work):

* **capacity**: after ``WARMUP`` exchanges, ``BENCH_EXCHANGE_ROUNDS`` (default 5) rounds of
  ``BENCH_EXCHANGE_N`` (default 1,000) exchanges from ``CLIENTS`` concurrent callers as fast as
  they go; exchanges per wall-clock second, the median round;
* **per core**: each round's exchanges per CPU-second of the process (``time.process_time``,
  all threads): the median round, and the slowest. On a shared VM single rounds vary by tens of
  percent (neighbours, CPU steal), which is why there are rounds;
* **latency at half capacity**: ``BENCH_EXCHANGE_ROUNDS`` rounds of ``BENCH_EXCHANGE_N``
  exchanges paced open-loop at half the median capacity (exchange *k* is due at ``k / rate``
  whatever happened before; latency is counted from that moment), p50 / p95 / p99 over all of
  them. A stall is intermittent (a full garbage collection, a burst past the connection pool),
  so one round can miss what another catches;
* **connections opened while paced**: PostgreSQL connections the pool opened during those
  rounds (at most its size: a burst past it waits rather than connecting).

Targets (issue 10): p50 <= 5 ms and p99 <= 25 ms at half capacity, >= 1,000 exchanges/s per core.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from urllib.parse import urlencode

import msgspec
from litestar import Litestar
from sqlalchemy import event

from benchmarks import Result
from benchmarks.asgi_driver import asgi_request
from benchmarks.scratch import engine_on, missing_services, production_settings, scratch_postgres
from control_plane.db.engine import make_sessionmaker
from control_plane.db.models import Membership, Org
from control_plane.tokens.grants import ACCESS_TOKEN_TYPE, TOKEN_EXCHANGE_GRANT
from control_plane.users.service import create_user

EXCHANGES = int(os.environ.get("BENCH_EXCHANGE_N", "1000"))
ROUNDS = int(os.environ.get("BENCH_EXCHANGE_ROUNDS", "5"))
CLIENTS = 4
#: Measured: the first round of a fresh process runs slower than the later ones.
WARMUP = 500
PASSWORD = "benchmark password 1234"


async def _seed(url: str) -> None:
    async with engine_on(url) as engine, make_sessionmaker(engine)() as db:
        user = await create_user(db, email="bench@example.com", password=PASSWORD)
        org = Org(slug="bench", name="Bench", phase="running")
        db.add(org)
        await db.flush()
        db.add(Membership(user_id=user.id, org_id=org.id, role="member"))
        await db.commit()


class Exchanger:
    """Sends exchanges of one access token to the app."""

    def __init__(self, app: Litestar, access: str) -> None:
        self.app = app
        self.form = urlencode(
            {
                "grant_type": TOKEN_EXCHANGE_GRANT,
                "subject_token": access,
                "subject_token_type": ACCESS_TOKEN_TYPE,
                "audience": "org:bench",
            }
        ).encode()

    async def once(self) -> None:
        status, answer = await asgi_request(
            self.app,
            "POST",
            "/oauth/token",
            body=self.form,
            content_type="application/x-www-form-urlencoded",
        )
        if status != 200:
            raise RuntimeError(f"exchange failed: {status} {answer[:300]!r}")

    async def capacity(self) -> tuple[float, float]:
        """(exchanges per wall-clock second, per CPU-second) with CLIENTS concurrent callers."""
        left = iter(range(EXCHANGES))

        async def caller() -> None:
            for _ in left:
                await self.once()

        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(CLIENTS)))
        return (
            EXCHANGES / (time.perf_counter() - wall),
            EXCHANGES / (time.process_time() - cpu),
        )

    async def paced_rounds(self, rate: float) -> tuple[list[float], int]:
        """Latencies of ``ROUNDS`` paced rounds, and the connections the pool opened meanwhile."""
        engine = self.app.state.runtime.engine.sync_engine
        connects: list[object] = []

        def count(conn: object, _record: object) -> None:
            connects.append(conn)

        event.listen(engine, "connect", count)
        try:
            samples = [ms for _ in range(ROUNDS) for ms in await self.paced(rate)]
        finally:
            event.remove(engine, "connect", count)
        return samples, len(connects)

    async def paced(self, rate: float) -> list[float]:
        """Latencies (ms, from each exchange's due time) of exchanges paced at ``rate``/s.

        Each exchange is started at its due time, as requests arrive: creating them all up
        front kept the loop busy for 7 to 30 ms at the start of a round, and the first
        exchanges' latency was that.
        """
        samples: list[float] = []
        running: list[asyncio.Task[None]] = []
        origin = time.perf_counter()

        async def one(due: float) -> None:
            await self.once()
            samples.append((time.perf_counter() - due) * 1000)

        for k in range(EXCHANGES):
            due = origin + k / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            running.append(asyncio.create_task(one(due)))
        await asyncio.gather(*running)
        return samples


async def _measure() -> list[Result]:
    from tests.interop.servers import app_in_this_loop

    async with scratch_postgres() as url:
        await _seed(url)
        with production_settings(url) as settings:
            async with app_in_this_loop(settings) as (app, _):
                status, answer = await asgi_request(
                    app,
                    "POST",
                    "/api/v1/auth/login",
                    body=msgspec.json.encode({"email": "bench@example.com", "password": PASSWORD}),
                    content_type="application/json",
                )
                if status != 200:
                    raise RuntimeError(f"login failed: {status} {answer[:300]!r}")
                exchanger = Exchanger(app, msgspec.json.decode(answer)["access_token"])
                for _ in range(WARMUP):
                    await exchanger.once()
                rounds = [await exchanger.capacity() for _ in range(ROUNDS)]
                rate = statistics.median(wall for wall, _ in rounds)
                per_core = statistics.median(cpu for _, cpu in rounds)
                latencies, connects = await exchanger.paced_rounds(rate / 2)
    return [
        Result(
            f"exchange capacity, {CLIENTS} concurrent callers, median of {ROUNDS} rounds "
            f"of {EXCHANGES}",
            rate,
            "/s",
        ),
        Result(
            f"exchanges per CPU-second (one core), median of {ROUNDS} rounds",
            per_core,
            "/s",
            ">= 1,000/s per core",
            per_core >= 1000,
        ),
        Result("exchanges per CPU-second, slowest round", min(cpu for _, cpu in rounds), "/s"),
        Result.distribution(
            f"exchange latency at half capacity ({rate / 2:,.0f}/s, open loop), "
            f"{ROUNDS} rounds of {EXCHANGES}",
            latencies,
            "ms",
            target="p50 <= 5, p99 <= 25 ms",
            check=lambda p50, _p95, p99: p50 <= 5 and p99 <= 25,
        ),
        Result("PostgreSQL connections opened during the paced rounds", connects, ""),
    ]


def run() -> list[Result]:
    """Measure and answer the figures (see the module docstring)."""
    missing = missing_services()
    if missing:
        return [Result.skip("token exchange on PostgreSQL", missing)]
    return asyncio.run(_measure())
