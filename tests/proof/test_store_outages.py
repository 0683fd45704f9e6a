"""PostgreSQL or Redis stops under writes: clear 503s, nothing half-written, recovery.

Each test runs a control plane on a private PostgreSQL or Redis (never the shared ones), keeps
writers busy, crashes the service mid-operation, starts it again, and checks:

* while it is down, every answer that needed it is 503 problem+json with a stable code
  (``database_unavailable`` / ``redis_unavailable``), never 500, and the process keeps serving;
* after it returns, the same requests succeed again without restarting the control plane;
* (PostgreSQL) every org is either complete (owner membership and ``org.create`` audit event)
  or absent, every added member has its ``member.add`` event, and every 202 left its org.
"""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest

from tests.proof.private_services import PrivatePostgres, PrivateRedis, postgres_bin
from tests.reconciler.test_crash_convergence import ADMIN, Plane
from tests.support.services import need
from tests.support.wait import WaitTimeout, eventually

pytestmark = pytest.mark.slow

DOWN_SECONDS = 6.0
RECOVERY_SECONDS = 40.0
TOKEN_GRANT_REFRESH = "refresh_token"


@dataclass
class Answer:
    kind: str
    sent: float
    received: float
    status: int
    code: str
    problem_json: bool


@dataclass
class Log:
    """Every answer the writers got, and the slugs whose creation was answered 202."""

    answers: list[Answer] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def between(self, start: float, end: float) -> list[Answer]:
        return [a for a in self.answers if a.sent >= start and a.received <= end]


Writer = Callable[[int], Awaitable[httpx.Response]]


async def keep_writing(kind: str, write: Writer, *, log: Log, stop: asyncio.Event) -> None:
    """Call ``write`` every 50 ms until ``stop``; log each answer."""
    n = 0
    while not stop.is_set():
        sent = time.time()
        try:
            answer = await write(n)
        except httpx.HTTPError as exc:
            log.errors.append(f"{kind}: {exc!r}")
        else:
            problem = answer.headers.get("content-type", "").startswith("application/problem+json")
            code = answer.json().get("code", "") if problem else ""
            log.answers.append(Answer(kind, sent, time.time(), answer.status_code, code, problem))
        n += 1
        await asyncio.sleep(0.05)  # the pace of the writes


def start_plane(tmp_path: Path, **env: str) -> Plane:
    plane = Plane(tmp_path, f"proof-{uuid.uuid4().hex[:8]}")
    plane.env.pop("ORGPLANE_REDIS_URL")
    plane.env.update(ORGPLANE_RECONCILER_ENABLED="false", **env)
    plane.start()
    return plane


async def login(http: httpx.AsyncClient) -> dict[str, Any]:
    answer = await http.post("/api/v1/auth/login", json=ADMIN)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def assert_outage_answers(log: Log, kinds: set[str], start: float, end: float, code: str) -> None:
    """Every answer of ``kinds`` sent and received while down is a 503 problem with ``code``."""
    down = [a for a in log.between(start, end) if a.kind in kinds]
    assert {a.kind for a in down} == kinds, f"no answer while down for some of {kinds}"
    wrong = [a for a in down if (a.status, a.code, a.problem_json) != (503, code, True)]
    assert not wrong, wrong[:5]


async def recovered(log: Log, kinds: set[str], since: float) -> None:
    """Wait (bounded) until every kind had a 2xx answer sent after ``since``."""
    missing = set(kinds)

    def every_kind_succeeded() -> bool:
        nonlocal missing
        missing = kinds - {a.kind for a in log.answers if a.sent >= since and 200 <= a.status < 300}
        return not missing

    try:
        await eventually(
            every_kind_succeeded,
            what="every writer succeeding again",
            timeout=RECOVERY_SECONDS,
            interval=0.2,
        )
    except WaitTimeout as exc:
        raise WaitTimeout(f"{exc}; not recovered: {missing}") from None


async def outage(
    writers: Mapping[str, Writer], *, log: Log, halt: Callable[[], None], resume: Callable[[], None]
) -> tuple[float, float]:
    """Keep ``writers`` busy, ``halt`` the service for ``DOWN_SECONDS``, ``resume`` it and wait
    until every writer succeeds again; answers (start, end) of the outage."""
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(keep_writing(kind, write, log=log, stop=stop))
        for kind, write in writers.items()
    ]
    try:
        await asyncio.sleep(2)  # writes for a while with the service up, before the fault
        await asyncio.to_thread(halt)
        down_at = time.time()
        await asyncio.sleep(DOWN_SECONDS)  # the outage lasts this long: time is the point
        up_at = time.time()
        await asyncio.to_thread(resume)
        await recovered(log, set(writers), since=time.time())
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    return down_at, up_at


def figures(log: Log, start: float, end: float) -> str:
    """Answers while down and in all, by kind and status (printed with ``-s``)."""
    down = Counter(f"{a.kind} {a.status}" for a in log.between(start, end))
    total = Counter(f"{a.kind} {a.status}" for a in log.answers)
    return f"while down {dict(sorted(down.items()))}; in all {dict(sorted(total.items()))}"


def assert_kept_serving(plane: Plane, pid: int, log: Log) -> None:
    """The same control-plane process answered everything, with no 5xx other than 503."""
    assert plane.proc is not None
    assert plane.proc.poll() is None, "the control plane exited"
    assert plane.proc.pid == pid
    assert not log.errors, log.errors[:5]
    assert not [a for a in log.answers if a.status >= 500 and a.status != 503]


async def test_postgres_stopped_mid_write(tmp_path: Path) -> None:
    need("PostgreSQL server binaries", postgres_bin() is not None)
    pg = PrivatePostgres()
    pg.init()
    pg.start()
    plane = None
    log = Log()
    try:
        plane = start_plane(tmp_path, ORGPLANE_DATABASE_URL=pg.url)
        pid = plane.proc.pid if plane.proc else 0
        async with httpx.AsyncClient(base_url=plane.url, timeout=15) as http:
            tokens = await login(http)
            headers = {"Authorization": f"Bearer {tokens['access_token']}"}
            homes = []
            for i in range(4):
                made = await http.post(
                    "/api/v1/orgs",
                    headers=headers,
                    json={"name": f"Home {i}", "slug": f"home-{i}", "plan": "team"},
                )
                assert made.status_code == 202, made.text
                homes.append(made.json()["id"])
            users = []
            for i in range(30):
                email = f"user{i}@outage.proof.test"
                made = await http.post(
                    "/api/v1/users",
                    headers=headers,
                    json={"email": email, "password": "a long enough password"},
                )
                assert made.status_code == 201, made.text
                users.append(email)

            async def create_org(n: int) -> httpx.Response:
                slug = f"out-{n}"
                answer = await http.post(
                    "/api/v1/orgs", headers=headers, json={"name": slug, "slug": slug}
                )
                if answer.status_code == 202:
                    log.created.append(slug)
                return answer

            async def add_member(n: int) -> httpx.Response:
                org, email = homes[n % len(homes)], users[(n // len(homes)) % len(users)]
                body = {"email": email, "role": "member"}
                return await http.post(f"/api/v1/orgs/{org}/members", headers=headers, json=body)

            refresh = {"token": tokens["refresh_token"]}

            async def refresh_token(n: int) -> httpx.Response:
                form = {"grant_type": TOKEN_GRANT_REFRESH, "refresh_token": refresh["token"]}
                answer = await http.post("/oauth/token", data=form)
                if answer.status_code == 200:
                    refresh["token"] = answer.json()["refresh_token"]
                return answer

            writers = {"org": create_org, "member": add_member, "refresh": refresh_token}
            down_at, up_at = await outage(
                writers, log=log, halt=lambda: pg.stop("immediate"), resume=pg.start
            )
        assert_kept_serving(plane, pid, log)
        print(f"postgres outage: {figures(log, down_at, up_at)}")
        assert_outage_answers(log, set(writers), down_at, up_at, "database_unavailable")
        await check_nothing_half_written(pg, log)
    finally:
        if plane is not None:
            plane.stop()
        pg.remove()


async def check_nothing_half_written(pg: PrivatePostgres, log: Log) -> None:
    conn = await asyncpg.connect(pg.url.replace("+asyncpg", ""))
    try:
        orgs = await conn.fetch(
            """SELECT o.slug,
                 (SELECT count(*) FROM membership m WHERE m.org_id = o.id AND m.role = 'owner'),
                 (SELECT count(*) FROM auditevent a WHERE a.org_id = o.id
                    AND a.action = 'org.create')
               FROM org o"""
        )
        members = await conn.fetch(
            """SELECT m.org_id, m.user_id,
                 (SELECT count(*) FROM auditevent a WHERE a.org_id = m.org_id
                    AND a.action = 'member.add' AND a.target_id = m.user_id)
               FROM membership m WHERE m.role = 'member'"""
        )
    finally:
        await conn.close()
    half = [tuple(row) for row in orgs if (row[1], row[2]) != (1, 1)]
    assert not half, f"orgs half-written: {half}"
    missing = set(log.created) - {row[0] for row in orgs}
    assert not missing, f"answered 202 but absent: {missing}"
    unaudited = [tuple(row) for row in members if row[2] != 1]
    assert not unaudited, f"members without their audit event: {unaudited}"
    assert members, "no member was added at all"


async def test_redis_stopped_mid_operation(tmp_path: Path) -> None:
    need("redis-server", shutil.which("redis-server") is not None)
    redis = PrivateRedis(tmp_path / "redis")
    redis.start()
    plane = None
    log = Log()
    try:
        plane = start_plane(tmp_path, ORGPLANE_REDIS_URL=redis.url)
        pid = plane.proc.pid if plane.proc else 0
        async with httpx.AsyncClient(base_url=plane.url, timeout=15) as http:
            headers = {"Authorization": f"Bearer {(await login(http))['access_token']}"}

            async def sign_in(n: int) -> httpx.Response:
                return await http.post("/api/v1/auth/login", json=ADMIN)

            async def create_org(n: int) -> httpx.Response:
                slug = f"redis-out-{n}"
                return await http.post(
                    "/api/v1/orgs", headers=headers, json={"name": slug, "slug": slug}
                )

            writers = {"login": sign_in, "org": create_org}
            down_at, up_at = await outage(writers, log=log, halt=redis.stop, resume=redis.start)
        assert_kept_serving(plane, pid, log)
        print(f"redis outage: {figures(log, down_at, up_at)}")
        assert_outage_answers(log, {"login"}, down_at, up_at, "redis_unavailable")
        # What does not need Redis kept working while it was down.
        during = [a for a in log.between(down_at, up_at) if a.kind == "org"]
        assert during, "no org was created while Redis was down"
        assert all(a.status == 202 for a in during), during[:5]
    finally:
        if plane is not None:
            plane.stop()
        redis.stop()
