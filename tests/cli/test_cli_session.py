"""The developer CLI end to end against a real control-plane process (uvicorn, SQLite in tmp).

``orgplane login / orgs / switch / token / whoami / logout`` run in-process (``main([...])``)
with ``XDG_CONFIG_HOME`` in tmp; one ``orgplane token`` runs as a real subprocess, the way
``curl -H "Authorization: Bearer $(orgplane token)"`` uses it.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.cli.main import main
from control_plane.db.models import Membership, Org
from control_plane.users.service import create_user
from tests.interop.servers import control_plane_process, free_port
from tests.support.api import PASSWORD

pytestmark = pytest.mark.slow


async def _seed(db_url: str) -> None:
    engine = create_async_engine(db_url, poolclass=NullPool)
    async with AsyncSession(engine, expire_on_commit=False) as db:
        dev = await create_user(db, email="dev@example.com", password=PASSWORD)
        for slug, role in (("acme", "owner"), ("beta", "member"), ("gamma", None)):
            org = Org(slug=slug, name=slug.title())
            db.add(org)
            await db.flush()
            if role:
                db.add(Membership(user_id=dev.id, org_id=org.id, role=role))
        await db.commit()
    await engine.dispose()


def _write(db_url: str, statement: Any) -> None:
    async def run() -> None:
        engine = create_async_engine(db_url, poolclass=NullPool)
        async with engine.begin() as conn:
            await conn.execute(statement)
        await engine.dispose()

    asyncio.run(run())


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A control plane process with a user ``dev`` (owner of acme, member of beta)."""
    root = tmp_path_factory.mktemp("cli-plane")
    db_url = f"sqlite+aiosqlite:///{root / 'plane.db'}"
    env = {
        "ORGPLANE_MODE": "embedded",
        "ORGPLANE_DATA_DIR": str(root),
        "ORGPLANE_DATABASE_URL": db_url,
        "ORGPLANE_SECRET_KEY": "cli-secret",
        "ORGPLANE_LOG_LEVEL": "WARNING",
        "ORGPLANE_RECONCILER_ENABLED": "false",
    }
    with control_plane_process(env, log=root / "server.log") as url:
        asyncio.run(_seed(db_url))
        yield {"url": url, "db_url": db_url}


@pytest.fixture
def config_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return tmp_path / "config" / "orgplane" / "credentials.json"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def login(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    url: str,
    password: str = PASSWORD,
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(password + "\n"))
    return run(capsys, "login", "--url", url, "--email", "dev@example.com", "--password-stdin")


def stored(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def edit(path: Path, **changes: Any) -> None:
    path.write_text(json.dumps({**stored(path), **changes}))


def test_login_switch_token_and_logout(
    server: dict[str, str],
    config_home: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = server["url"]
    assert login(capsys, monkeypatch, url)[:2] == (0, f"logged in to {url} as dev@example.com\n")
    assert config_home.stat().st_mode & 0o777 == 0o600
    assert config_home.parent.stat().st_mode & 0o777 == 0o700
    assert stored(config_home)["refresh_token"].startswith("opr_")

    code, out, _ = run(capsys, "whoami")
    assert code == 0
    assert out.splitlines() == [f"dev@example.com at {url}", "current organization: (none)"]
    code, _, err = run(capsys, "token")
    assert (code, err) == (
        1,
        "orgplane: no current organization; run `orgplane switch SLUG` first\n",
    )
    code, out, _ = run(capsys, "orgs")
    assert code == 0
    assert [line.split()[:2] for line in out.splitlines()] == [
        ["acme", "owner"],
        ["beta", "member"],
    ]

    assert run(capsys, "switch", "ACME")[:2] == (0, "switched to acme\n")
    assert run(capsys, "orgs")[1].startswith("* acme")
    code, out, _ = run(capsys, "token")
    token = out.strip()
    keys = httpx.get(f"{url}/.well-known/jwks.json").json()["keys"]
    key = jwt.PyJWK(next(k for k in keys if k["kid"] == jwt.get_unverified_header(token)["kid"]))
    org_id = jwt.decode(token, options={"verify_signature": False})["org_id"]
    claims = jwt.decode(
        token, key, algorithms=["ES256"], issuer=url, audience=f"urn:orgplane:org:{org_id}"
    )
    assert (claims["org_slug"], claims["org_role"]) == ("acme", "owner")
    assert run(capsys, "token")[1].strip() == token, "a valid org token is reused"

    shell = subprocess.run(
        [sys.executable, "-m", "control_plane.cli.main", "token"],
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ.copy(),
    )
    assert shell.returncode == 0, shell.stderr
    assert shell.stdout == token + "\n", "stdout carries the token and nothing else"

    edit(config_home, org_token_expires_at=0, access_expires_at=0)
    parallel = [
        subprocess.Popen(
            [sys.executable, "-m", "control_plane.cli.main", "token"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=os.environ.copy(),
        )
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=90) for p in parallel]
    assert [p.returncode for p in parallel] == [0, 0, 0, 0], outputs
    assert len({out for out, _ in outputs}) == 1, "the first refreshes, the others reuse it"
    assert run(capsys, "whoami")[0] == 0, "parallel refreshes must not revoke the login"

    edit(config_home, org_token_expires_at=0, access_expires_at=0)
    before = stored(config_home)["refresh_token"]
    fresh = run(capsys, "token")[1].strip()
    assert fresh != token
    assert stored(config_home)["refresh_token"] != before, "the rotated refresh token is kept"

    spent = stored(config_home)["refresh_token"]
    assert run(capsys, "logout")[:2] == (0, "logged out\n")
    assert not config_home.exists()
    again = httpx.post(
        f"{url}/oauth/token", data={"grant_type": "refresh_token", "refresh_token": spent}
    )
    assert again.json()["error"] == "invalid_grant", "logout revokes the refresh token"
    code, _, err = run(capsys, "whoami")
    assert (code, err) == (1, "orgplane: not logged in; run `orgplane login --url URL` first\n")


def test_failures_have_clear_messages(
    server: dict[str, str],
    config_home: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = server["url"]
    code, _, err = login(capsys, monkeypatch, url, password="not the password")
    assert (code, err) == (1, "orgplane: login failed: The email or password is not correct.\n")
    assert login(capsys, monkeypatch, url)[0] == 0
    for slug in ("nope", "gamma"):
        code, _, err = run(capsys, "switch", slug)
        assert (code, err) == (1, f"orgplane: unknown organization or no access: {slug}\n")

    _write(server["db_url"], update(Org).where(Org.slug == "beta").values(suspended=True))
    try:
        code, _, err = run(capsys, "switch", "beta")
        assert (code, err) == (1, "orgplane: cannot enter beta: The organization is suspended.\n")
    finally:
        _write(server["db_url"], update(Org).where(Org.slug == "beta").values(suspended=False))

    stolen = stored(config_home)["refresh_token"]
    spend = httpx.post(
        f"{url}/oauth/token", data={"grant_type": "refresh_token", "refresh_token": stolen}
    )
    assert spend.status_code == 200
    edit(config_home, access_expires_at=0)
    code, _, err = run(capsys, "switch", "acme")
    assert code == 1
    assert err == (
        f"orgplane: your login has expired or was revoked; run `orgplane login --url {url}` again\n"
    )

    closed = f"http://127.0.0.1:{free_port()}"
    edit(config_home, url=closed, access_expires_at=0)
    code, _, err = run(capsys, "whoami")
    assert code == 1
    assert err.startswith(f"orgplane: cannot reach the control plane at {closed}")
    monkeypatch.setattr(sys, "stdin", io.StringIO("whatever\n"))
    code, _, err = run(capsys, "login", "--url", closed, "--email", "a@b.c", "--password-stdin")
    assert code == 1
    assert "cannot reach the control plane" in err
    code, _, _ = run(capsys, "logout")
    assert code == 0
    assert not config_home.exists()


def test_owners_switch_the_staff_approval_gate(
    server: dict[str, str],
    config_home: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``orgplane access-approval`` did not exist on the old code (argparse refused it)."""
    assert login(capsys, monkeypatch, server["url"])[0] == 0
    assert run(capsys, "access-approval", "acme", "on")[:2] == (
        0,
        "acme: staff need an approved access request: on\n",
    )
    assert run(capsys, "access-approval", "acme", "show")[1].endswith(": on\n")
    assert run(capsys, "access-approval", "acme", "off")[1].endswith(": off\n")
    code, _, err = run(capsys, "access-approval", "beta", "on")  # a member, not an owner
    assert (code, err) == (
        1,
        "orgplane: cannot change beta: Only the organization's owners decide whether staff "
        "need an approval.\n",
    )
    code, _, err = run(capsys, "access-approval", "gamma", "on")
    assert (code, err) == (1, "orgplane: unknown organization or no access: gamma\n")
