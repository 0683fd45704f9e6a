"""Statelessness: two real control-plane processes on one PostgreSQL database.

``orgplane migrate`` prepares an empty database, ``orgplane admin create`` makes the first
admin, then two uvicorn processes in production mode serve the same platform: a token issued
by one is accepted by the other, writes through one are read through the other, and a slug
raced through both is created exactly once.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.support.api import PASSWORD
from tests.support.db import drop_postgres_database
from tests.support.services import POSTGRES_DSN, REPO, need, postgres_available
from tests.support.wait import wait_http

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

ISSUER = "http://control-plane.test"
START_TIMEOUT = 60.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
async def empty_database() -> AsyncIterator[str]:
    """A new, empty (unmigrated) PostgreSQL database; its SQLAlchemy URL."""
    need("PostgreSQL", postgres_available())
    name = f"orgplane_2p_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(POSTGRES_DSN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    server = POSTGRES_DSN.split("://", 1)[1].rsplit("/", 1)[0]
    try:
        yield f"postgresql+asyncpg://{server}/{name}"
    finally:
        await drop_postgres_database(name)


@pytest.fixture
def environment(empty_database: str, tmp_path: Path) -> dict[str, str]:
    """The environment both processes share (production mode, one issuer, one secret)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ORGPLANE_")}
    return {
        **clean,
        "ORGPLANE_MODE": "production",
        "ORGPLANE_DATABASE_URL": empty_database,
        "ORGPLANE_SECRET_KEY": "two-processes-test-secret",
        "ORGPLANE_PUBLIC_URL": ISSUER,
        "ORGPLANE_DATA_DIR": str(tmp_path / "data"),
        "ORGPLANE_LOG_FORMAT": "json",
        "ORGPLANE_LOG_LEVEL": "WARNING",
        # Orgs stay pending: this test is about the API, not about provisioning instances.
        "ORGPLANE_RECONCILER_ENABLED": "false",
    }


def _cli(env: dict[str, str], *args: str, stdin: str = "") -> str:
    done = subprocess.run(
        [sys.executable, "-m", "control_plane.cli.main", *args],
        env=env,
        cwd=REPO,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def servers(environment: dict[str, str], tmp_path: Path) -> Iterator[list[str]]:
    """Migrate, create the admin, then start two control planes; their base URLs."""
    assert "database at migration" in _cli(environment, "migrate")
    _cli(
        environment,
        "admin",
        "create",
        "--email",
        "root@example.com",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    processes, urls = [], []
    try:
        for index in range(2):
            port = _free_port()
            with (tmp_path / f"server-{index}.log").open("w") as log:
                processes.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "uvicorn",
                            "control_plane.app:create_app",
                            "--factory",
                            "--host",
                            "127.0.0.1",
                            "--port",
                            str(port),
                            "--no-access-log",
                        ],
                        env=environment,
                        cwd=REPO,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
            urls.append(f"http://127.0.0.1:{port}")
        for index, (url, process) in enumerate(zip(urls, processes, strict=True)):
            wait_http(
                f"{url}/readyz",
                timeout=START_TIMEOUT,
                proc=process,
                log=tmp_path / f"server-{index}.log",
            )
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


async def test_two_processes_serve_one_platform(servers: list[str]) -> None:
    first, second = servers
    async with httpx.AsyncClient(timeout=30) as http:
        login = await http.post(
            f"{first}/api/v1/auth/login", json={"email": "root@example.com", "password": PASSWORD}
        )
        assert login.status_code == 200, login.text
        admin = {"Authorization": f"Bearer {login.json()['access_token']}"}
        me = await http.get(f"{second}/api/v1/me", headers=admin)
        assert me.status_code == 200
        assert me.json()["email"] == "root@example.com"

        made = await http.post(
            f"{first}/api/v1/orgs",
            headers=admin,
            json={"name": "Acme", "slug": "acme", "plan": "team"},
        )
        assert made.status_code == 202, made.text
        read = await http.get(f"{second}/api/v1/orgs/acme", headers=admin)
        assert read.status_code == 200
        assert read.json()["id"] == made.json()["id"]

        user = await http.post(
            f"{second}/api/v1/users",
            headers=admin,
            json={"email": "alice@example.com", "password": PASSWORD},
        )
        assert user.status_code == 201, user.text
        added = await http.post(
            f"{second}/api/v1/orgs/acme/members",
            headers=admin,
            json={"email": "alice@example.com", "role": "admin"},
        )
        assert added.status_code == 201, added.text
        alice_login = await http.post(
            f"{second}/api/v1/auth/login", json={"email": "alice@example.com", "password": PASSWORD}
        )
        alice = {"Authorization": f"Bearer {alice_login.json()['access_token']}"}
        mine = await http.get(f"{first}/api/v1/me/orgs", headers=alice)
        assert [(o["slug"], o["role"]) for o in mine.json()["items"]] == [("acme", "admin")]
        events = await http.get(f"{first}/api/v1/audit", headers=alice, params={"org_id": "acme"})
        assert [e["action"] for e in events.json()["items"]] == ["member.add", "org.create"]

        racers = [
            http.post(
                f"{servers[i % 2]}/api/v1/orgs",
                headers=admin,
                json={"name": f"Racer {i}", "slug": "race-co"},
            )
            for i in range(10)
        ]
        answers = await asyncio.wait_for(asyncio.gather(*racers), timeout=60)
        assert sorted(a.status_code for a in answers) == [202] + [409] * 9
        assert {a.json()["code"] for a in answers if a.status_code == 409} == {"slug_taken"}
        listed = await http.get(f"{second}/api/v1/orgs", headers=admin)
        assert [o["slug"] for o in listed.json()["items"]] == ["acme", "race-co"]
