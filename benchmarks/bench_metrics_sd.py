"""Metrics at 1,000 instances: Prometheus service discovery and the control plane's scrape.

A scratch PostgreSQL database holds ``BENCH_METRICS_INSTANCES`` (default 1,000) running orgs
with Instance rows, inserted directly (no processes: the control plane only reads the rows),
each with an endpoint, a plan (four plans) and a reported version (two versions), and one
active rollout over all of them (its per-org rows feed ``orgplane_rollout_orgs``). The control
plane runs in this process (the app with its lifespan, called through httpx's ASGI transport:
no network), production mode, reconciler off. Each endpoint is called ``BENCH_METRICS_N``
times (default 100) one after another, after 5 unmeasured calls:

* ``GET /api/v1/routing/prometheus`` (``http_sd_configs``, routing token): wall time per
  answer, CPU per answer (``time.process_time`` of this process over the calls: the server's
  work plus httpx's thin in-process client), the answer's size, target groups;
* ``GET /metrics`` (metrics token): the same, twice: with the HTTP series of the routes this
  run called, and with every route template of the app seen with three statuses (200, 401,
  404), the label set a long-lived control plane accumulates.

Targets (why): Prometheus refreshes ``http_sd_configs`` every 60 s by default and scrapes every
15 s (``deploy/prometheus/prometheus.yml``). Service discovery at 1,000 instances within
p95 <= 250 ms and <= 100 ms CPU per answer costs a replica under 0.2% of a core per Prometheus;
a scrape within <= 50 ms CPU costs it under 0.35% of a core, and its size must not grow with
the number of instances (fleet series are counts by bounded labels): <= 200 kB on the wire with
every route seen. The client asks for gzip, as Prometheus always does; the figures give both the
bytes transferred and the decoded body.
"""

from __future__ import annotations

import asyncio
import os
import time

import httpx
from sqlalchemy import text

from benchmarks import Result
from benchmarks.scratch import (
    engine_on,
    missing_services,
    production_settings,
    scratch_postgres,
    seed_orgs,
)
from control_plane.db.engine import make_sessionmaker
from control_plane.db.fleet_models import InstanceVersion, Rollout, RolloutOrg
from control_plane.metrics import metrics_of

INSTANCES = int(os.environ.get("BENCH_METRICS_INSTANCES", "1000"))
REQUESTS = int(os.environ.get("BENCH_METRICS_N", "100"))
WARMUP = 5
ROUTING_TOKEN = "bench-routing-token-0123456789abcdef"
METRICS_TOKEN = "bench-metrics-token-0123456789abcdef"
PLANS = ("free", "team", "business", "enterprise")
VERSIONS = ("1.4.0", "1.5.0")
ROLLOUT_STATES = ("upgraded", "upgrading", "queued", "skipped")
#: Targets: SD p95 (ms) and CPU per answer (ms); scrape CPU (ms) and size (bytes).
SD_P95_MS, SD_CPU_MS, SCRAPE_CPU_MS, SCRAPE_BYTES = 250.0, 100.0, 50.0, 200_000


async def _fleet(url: str, ids: list[str]) -> None:
    """Endpoints, plans and versions of the seeded instances, and one active rollout."""
    async with engine_on(url) as engine:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE instance i SET endpoint = 'http://10.20.' || (o.n / 250) || '.' "
                    "|| (o.n % 250) || :port, version = CASE WHEN o.n % 10 = 0 THEN :new "
                    "ELSE :old END FROM (SELECT id, row_number() OVER (ORDER BY slug) AS n "
                    "FROM org) o WHERE i.org_id = o.id"
                ),
                {"new": VERSIONS[1], "old": VERSIONS[0], "port": ":8000"},
            )
            for n, plan in enumerate(PLANS):
                await conn.execute(
                    text(
                        "UPDATE org SET plan = :plan WHERE CAST(right(slug, 1) AS integer) % 4 = :n"
                    ),
                    {"plan": plan, "n": n},
                )
        async with make_sessionmaker(engine)() as db:
            versions = [
                InstanceVersion(name=name, image=f"orgplane-instance:{name}", repository="x")
                for name in VERSIONS
            ]
            db.add_all(versions)
            await db.flush()
            rollout = Rollout(to_version_id=versions[1].id, target={"kind": "all"}, wave_count=4)
            db.add(rollout)
            await db.flush()
            db.add_all(
                RolloutOrg(
                    rollout_id=rollout.id,
                    org_id=org_id,
                    wave=n % 4,
                    state=ROLLOUT_STATES[n % 4],
                    from_image="orgplane-instance:1.4.0",
                )
                for n, org_id in enumerate(ids)
            )
            await db.commit()


async def _timed(
    client: httpx.AsyncClient, path: str, token: str
) -> tuple[list[float], float, httpx.Response]:
    """Wall times (ms) of ``REQUESTS`` calls, CPU ms per call, the last answer."""
    headers = {"Authorization": f"Bearer {token}", "Accept-Encoding": "gzip"}
    samples: list[float] = []
    cpu = 0.0
    answer: httpx.Response | None = None
    for n in range(WARMUP + REQUESTS):
        cpu_start, started = time.process_time(), time.perf_counter()
        answer = await client.get(path, headers=headers)
        elapsed = (time.perf_counter() - started) * 1000
        if answer.status_code != 200:
            raise RuntimeError(f"GET {path}: {answer.status_code} {answer.text[:300]}")
        if n >= WARMUP:
            samples.append(elapsed)
            cpu += time.process_time() - cpu_start
    assert answer is not None
    return samples, cpu * 1000 / REQUESTS, answer


def _every_route_seen(app: object) -> int:
    """Observe every route template of the app with three statuses; answers the templates."""
    metrics = metrics_of(app.state)  # type: ignore[attr-defined]
    assert metrics is not None
    templates = 0
    for route in app.routes:  # type: ignore[attr-defined]
        for method in sorted(getattr(route, "methods", ()) or ()):
            if method in ("HEAD", "OPTIONS"):
                continue
            templates += 1
            for status in ("200", "401", "404"):
                metrics.http_request(method, route.path, int(status), 0.01)
    return templates


async def _measure() -> list[Result]:
    from tests.interop.servers import app_in_this_loop

    async with scratch_postgres() as url:
        seeded = await seed_orgs(url, count=INSTANCES, instances=True)
        await _fleet(url, seeded.org_ids)
        with production_settings(
            url, ORGPLANE_ROUTING_TOKEN=ROUTING_TOKEN, ORGPLANE_METRICS_TOKEN=METRICS_TOKEN
        ) as settings:
            async with app_in_this_loop(settings) as (app, client):
                return await _figures(app, client)


async def _figures(app: object, client: httpx.AsyncClient) -> list[Result]:
    n = f"{INSTANCES:,} instances"
    wall, cpu, answer = await _timed(client, "/api/v1/routing/prometheus", ROUTING_TOKEN)
    groups = len(answer.json())
    if groups != INSTANCES:
        raise RuntimeError(f"service discovery listed {groups} of {INSTANCES} instances")
    results = [
        Result.distribution(
            f"http_sd answer at {n}, wall",
            wall,
            "ms",
            target=f"p95 <= {SD_P95_MS:.0f} ms",
            check=lambda _p50, p95, _p99: p95 <= SD_P95_MS,
        ),
        Result(
            f"http_sd answer at {n}, CPU per answer",
            cpu,
            "ms",
            f"<= {SD_CPU_MS:.0f} ms",
            cpu <= SD_CPU_MS,
        ),
        Result(f"http_sd answer at {n}, size", len(answer.content), "bytes"),
    ]
    for label, templates in (("routes this run called", 0), ("every route seen", 1)):
        if templates:
            label = f"every route seen ({_every_route_seen(app)} templates x 3 statuses)"
        wall, cpu, answer = await _timed(client, "/metrics", METRICS_TOKEN)
        size, wire = len(answer.content), int(answer.headers["content-length"])
        if answer.headers.get("content-encoding") != "gzip":
            raise RuntimeError("the scrape was not gzipped although the client asked for it")
        series = sum(1 for line in answer.text.splitlines() if line and not line.startswith("#"))
        results += [
            Result.distribution(f"/metrics scrape at {n}, {label}, wall", wall, "ms"),
            Result(
                f"/metrics scrape at {n}, {label}, CPU per scrape",
                cpu,
                "ms",
                f"<= {SCRAPE_CPU_MS:.0f} ms",
                cpu <= SCRAPE_CPU_MS,
            ),
            Result(
                f"/metrics scrape at {n}, {label}, size on the wire (gzip)",
                wire,
                "bytes",
                f"<= {SCRAPE_BYTES:,}",
                wire <= SCRAPE_BYTES,
            ),
            Result(f"/metrics scrape at {n}, {label}, size decoded", size, "bytes"),
            Result(f"/metrics scrape at {n}, {label}, samples", series, "lines"),
        ]
    return results


def run() -> list[Result]:
    """Measure and answer the figures (see the module docstring)."""
    missing = missing_services()
    if missing:
        return [Result.skip(f"metrics at {INSTANCES:,} instances", missing)]
    print(f"  {INSTANCES:,} instances, {REQUESTS} calls per figure")
    return asyncio.run(_measure())
