"""Listing, search and lookup of orgs with 10,000 orgs in PostgreSQL.

A scratch PostgreSQL database holds ``BENCH_LISTING_ORGS`` (default 10,000) live root orgs,
inserted directly; a member belongs to every ``BENCH_LISTING_MEMBER_EVERY``-th one (default 10:
1,000 memberships), a platform admin sees them all. The control plane runs in this process
(the app with its lifespan, called through httpx's ASGI transport: no network, so the figures
are the server's work plus a thin client) and each request is sent ``BENCH_LISTING_N`` times
(default 200) one after another, after 10 unmeasured ones:

* ``GET /api/v1/orgs?limit=50``: the first page, and a deep page (the keyset cursor of the
  org 90% of the way through the caller's list);
* ``GET /api/v1/orgs?q=...&limit=50``: search by a fragment of the slug or name: a rare one
  (the five digits of org 54,321, whose trigrams few slugs share), and one of a single
  repeated trigram (``0000``: every slug with ``000`` is a candidate, the worst case of the
  trigram indexes);
* ``GET /api/v1/orgs/lookup?q=...``: autocomplete (20 by slug);
* ``GET /api/v1/orgs/{id}`` and ``/{slug}``: one org.

The query plans of the list, the keyset page and the search are printed (``EXPLAIN``), so a
sequential scan shows. Beside each latency, the org rows PostgreSQL read per request
(``pg_stat_user_tables``: sequential plus index fetches, over ``ROWS_N`` requests after the
timed ones, so prepared statements run their long-lived plans): a figure the machine's load does
not move, where a walk through every org shows as 100,000.
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
from control_plane.users.service import create_user
from orgplane_wire.cursors import encode_cursor

ORGS = int(os.environ.get("BENCH_LISTING_ORGS", "10000"))
MEMBER_EVERY = int(os.environ.get("BENCH_LISTING_MEMBER_EVERY", "10"))
REQUESTS = int(os.environ.get("BENCH_LISTING_N", "200"))
WARMUP = 10
ROWS_N = 20
RARE = 54_321
PASSWORD = "benchmark password 1234"
#: Query plans to show: the list's first page, a keyset page, a search.
PLANS = {
    "first page": "SELECT id FROM org WHERE deleted_at IS NULL ORDER BY slug, id LIMIT 51",
    "keyset page": "SELECT id FROM org WHERE deleted_at IS NULL AND (slug > 'org-09000' OR "
    "(slug = 'org-09000' AND id > '')) ORDER BY slug, id LIMIT 51",
    "search": "SELECT id FROM org WHERE deleted_at IS NULL AND (lower(name) LIKE '%9123%' OR "
    "slug LIKE '%9123%') ORDER BY slug, id LIMIT 51",
}


async def _users(url: str) -> str:
    """A platform admin and a member; answers the member's id."""
    async with engine_on(url) as engine, make_sessionmaker(engine)() as db:
        await create_user(
            db, email="admin@bench.example", password=PASSWORD, is_platform_admin=True
        )
        member = await create_user(db, email="member@bench.example", password=PASSWORD)
        await db.commit()
        return member.id


async def _plans(url: str) -> None:
    async with engine_on(url) as engine, engine.connect() as conn:
        await conn.execute(text("ANALYZE"))
        for name, sql in PLANS.items():
            plan = (await conn.execute(text(f"EXPLAIN {sql}"))).scalars().all()
            print(f"  plan, {name}: " + " / ".join(line.strip() for line in plan[:4]))


async def _timed(client: httpx.AsyncClient, path: str, headers: dict[str, str]) -> list[float]:
    samples: list[float] = []
    for n in range(WARMUP + REQUESTS):
        started = time.perf_counter()
        answer = await client.get(path, headers=headers)
        elapsed = (time.perf_counter() - started) * 1000
        if answer.status_code != 200:
            raise RuntimeError(f"GET {path}: {answer.status_code} {answer.text[:300]}")
        if n >= WARMUP:
            samples.append(elapsed)
    return samples


async def _rows_read(url: str) -> int:
    """Org rows read so far (after the statistics of finished transactions are flushed)."""
    await asyncio.sleep(1.2)  # PostgreSQL 15 flushes backend statistics at most once a second
    async with engine_on(url) as engine, engine.connect() as conn:
        await conn.execute(text("SELECT pg_stat_clear_snapshot()"))
        read = await conn.execute(
            text(
                "SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) "
                "FROM pg_stat_user_tables WHERE relname = 'org'"
            )
        )
        return int(read.scalar_one())


async def _per_request(
    url: str, client: httpx.AsyncClient, path: str, headers: dict[str, str]
) -> float:
    before = await _rows_read(url)
    for _ in range(ROWS_N):
        (await client.get(path, headers=headers)).raise_for_status()
    return (await _rows_read(url) - before) / ROWS_N


async def _login(client: httpx.AsyncClient, email: str) -> dict[str, str]:
    answer = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    answer.raise_for_status()
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


async def _measure() -> list[Result]:
    from tests.interop.servers import app_in_this_loop

    async with scratch_postgres() as url:
        member_id = await _users(url)
        seeded = await seed_orgs(
            url, count=ORGS, member_user_id=member_id, member_every=MEMBER_EVERY
        )
        await _plans(url)
        with production_settings(url) as settings:
            async with app_in_this_loop(settings) as (_, client):
                return await _figures(url, client, seeded.org_ids, seeded.slugs)


async def _figures(
    url: str, client: httpx.AsyncClient, ids: list[str], slugs: list[str]
) -> list[Result]:
    results: list[Result] = []
    members = list(range(0, len(ids), MEMBER_EVERY))
    for who, email, visible in (
        ("admin", "admin@bench.example", list(range(len(ids)))),
        ("member", "member@bench.example", members),
    ):
        headers = await _login(client, email)
        deep = visible[int(len(visible) * 0.9)]
        target = visible[len(visible) // 2]
        cursor = encode_cursor(slugs[deep], ids[deep])
        rare = slugs[RARE % len(slugs)][-5:]
        paths = {
            f"list first page of 50 ({len(visible):,} visible)": "/api/v1/orgs?limit=50",
            "list keyset page at 90%": f"/api/v1/orgs?limit=50&cursor={cursor}",
            f"search ?q={rare}": f"/api/v1/orgs?limit=50&q={rare}",
            "search ?q=0000": "/api/v1/orgs?limit=50&q=0000",
            f"lookup ?q={rare}": f"/api/v1/orgs/lookup?q={rare}",
            "read by id": f"/api/v1/orgs/{ids[target]}",
            "read by slug": f"/api/v1/orgs/{slugs[target]}",
        }
        for label, path in paths.items():
            samples = await _timed(client, path, headers)
            results.append(Result.distribution(f"{who}: {label}", samples, "ms"))
            rows = await _per_request(url, client, path, headers)
            results.append(Result(f"{who}: {label}, org rows read", rows, "rows"))
    return results


def run() -> list[Result]:
    """Measure and answer the figures (see the module docstring)."""
    missing = missing_services()
    if missing:
        return [Result.skip("org listing at 10,000 orgs", missing)]
    print(f"  {ORGS:,} orgs, member of every {MEMBER_EVERY}th, {REQUESTS} requests per figure")
    return asyncio.run(_measure())
