"""Login throttling: atomic counts, keyed on the real client IP, no lock-out of everyone.

The app runs in the test's own event loop behind ``httpx.ASGITransport`` (the ``client`` fixture
serialises requests), whose ``client=`` sets the peer address each attacker or user comes from.
SQLite only: the counts are in the throttle's storage, not in the database. The same behaviour
across two replicas sharing Redis is in ``tests/proof/test_login_throttling.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from litestar import Litestar

from control_plane.app import create_app
from control_plane.users.service import create_user
from tests.support.api import PASSWORD, assert_problem

pytestmark = pytest.mark.parametrize("db_backend", ["sqlite"])

LOGIN = "/api/v1/auth/login"
WRONG = {"email": "victim@example.com", "password": "not the password"}
RIGHT = {"email": "victim@example.com", "password": PASSWORD}


@asynccontextmanager
async def running(make_settings: Any, **env: str) -> AsyncIterator[Litestar]:
    """The app, started, with the victim's account."""
    app = create_app(make_settings(**env))
    async with app.lifespan():
        async with app.state.runtime.sessions() as db:
            await create_user(db, email="victim@example.com", password=PASSWORD)
            await db.commit()
        yield app


def from_peer(app: Litestar, peer: str) -> httpx.AsyncClient:
    """A client whose requests reach ``app`` from the peer address ``peer``."""
    transport = httpx.ASGITransport(app=app, client=(peer, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080")


async def test_concurrent_wrong_passwords_count_each_attempt(
    make_settings: Any, db_backend: str
) -> None:
    """30 wrong passwords at once against a limit of 5: 5 are answered 401, 25 are 429.

    Failed on the old code (``WindowLimiter``: check, verify, then read-and-write the count):
    the attempts passed the check before their failures were counted, and far more than 5
    were answered 401."""
    async with (
        running(make_settings, ORGPLANE_LOGIN_RATE_LIMIT="5") as app,
        from_peer(app, "203.0.113.7") as attacker,
    ):
        answers = await asyncio.gather(*(attacker.post(LOGIN, json=WRONG) for _ in range(30)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [401] * 5 + [429] * 25, statuses
    for blocked in (a for a in answers if a.status_code == 429):
        assert_problem(blocked, 429, "rate_limited")
        assert int(blocked.headers["retry-after"]) > 0


async def test_one_client_cannot_lock_an_account_out_for_everyone(
    make_settings: Any, db_backend: str
) -> None:
    """An attacker who used up the (email, IP) limit is refused; the account's owner, from
    another address, still logs in. The attacker's own IP stays blocked for that email.

    Failed on the old code: failures were counted per email alone, so the owner got 429."""
    async with (
        running(make_settings, ORGPLANE_LOGIN_RATE_LIMIT="3") as app,
        from_peer(app, "203.0.113.7") as attacker,
        from_peer(app, "198.51.100.2") as me,
    ):
        statuses = [(await attacker.post(LOGIN, json=WRONG)).status_code for _ in range(4)]
        assert statuses == [401, 401, 401, 429]
        assert (await me.post(LOGIN, json=RIGHT)).status_code == 200
        assert_problem(await attacker.post(LOGIN, json=RIGHT), 429, "rate_limited")


async def test_one_ip_spraying_many_accounts_is_stopped(
    make_settings: Any, db_backend: str
) -> None:
    """Password spraying: one address, a new email each time, refused past the per-IP limit,
    while another address is not."""
    env = {"ORGPLANE_LOGIN_RATE_LIMIT_IP": "4"}
    async with (
        running(make_settings, **env) as app,
        from_peer(app, "203.0.113.7") as attacker,
        from_peer(app, "198.51.100.2") as me,
    ):
        statuses = []
        for i in range(5):
            guess = {"email": f"u{i}@example.com", "password": "guess guess"}
            statuses.append((await attacker.post(LOGIN, json=guess)).status_code)
        assert statuses == [401, 401, 401, 401, 429]
        assert (await me.post(LOGIN, json=RIGHT)).status_code == 200


async def test_many_ips_reach_the_looser_per_account_limit(
    make_settings: Any, db_backend: str
) -> None:
    """A distributed attack on one email is stopped by the per-account limit, even from
    addresses that each stay under the (email, IP) limit; a success gives its count back."""
    env = {"ORGPLANE_LOGIN_RATE_LIMIT": "2", "ORGPLANE_LOGIN_RATE_LIMIT_ACCOUNT": "4"}
    async with running(make_settings, **env) as app, from_peer(app, "198.51.100.2") as me:
        for _ in range(3):  # successes never use the allowance up
            assert (await me.post(LOGIN, json=RIGHT)).status_code == 200
        statuses = []
        for i in range(5):
            async with from_peer(app, f"203.0.113.{i + 1}") as attacker:
                statuses.append((await attacker.post(LOGIN, json=WRONG)).status_code)
        assert statuses == [401, 401, 401, 401, 429]
        assert_problem(await me.post(LOGIN, json=RIGHT), 429, "rate_limited")


async def test_throttling_is_keyed_on_the_real_client_ip(
    make_settings: Any, db_backend: str
) -> None:
    """Behind a trusted proxy, two clients are told apart by ``X-Forwarded-For``: the one who
    used up its limit is refused, the other logs in; an untrusted peer's forged header does not
    get it a fresh allowance."""
    env = {"ORGPLANE_LOGIN_RATE_LIMIT": "2", "ORGPLANE_TRUSTED_PROXIES": '["10.0.0.0/8"]'}
    async with (
        running(make_settings, **env) as app,
        from_peer(app, "10.1.2.3") as proxy,
        from_peer(app, "203.0.113.9") as direct,
    ):
        attacker = {"X-Forwarded-For": "203.0.113.7"}
        for expected in (401, 401, 429):
            answer = await proxy.post(LOGIN, json=WRONG, headers=attacker)
            assert answer.status_code == expected
        owner = {"X-Forwarded-For": "198.51.100.2"}
        assert (await proxy.post(LOGIN, json=RIGHT, headers=owner)).status_code == 200
        for expected in (401, 401, 429):
            forged = {"X-Forwarded-For": f"198.51.100.{expected}"}
            answer = await direct.post(LOGIN, json=WRONG, headers=forged)
            assert answer.status_code == expected
