"""``orgplane login`` for an account with TOTP on, against a real control-plane process: it
asks for the one-time code after the password (or takes ``--otp``)."""

from __future__ import annotations

import asyncio
import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.cli.main import main
from control_plane.users.service import create_user
from tests.interop.servers import control_plane_process
from tests.support.api import PASSWORD
from tests.support.mfa import TOTP, code, steady_step

pytestmark = pytest.mark.slow
EMAIL = "mfa@example.com"


async def _seed(db_url: str) -> None:
    engine = create_async_engine(db_url, poolclass=NullPool)
    async with AsyncSession(engine, expire_on_commit=False) as db:
        await create_user(db, email=EMAIL, password=PASSWORD)
        await db.commit()
    await engine.dispose()


def _enable_mfa(url: str) -> str:
    """Turn TOTP on through the API (confirmed with the previous step's code); the secret."""
    with httpx.Client(base_url=url) as api:
        signed_in = api.post("/api/v1/auth/login", json={"email": EMAIL, "password": PASSWORD})
        headers = {"Authorization": f"Bearer {signed_in.json()['access_token']}"}
        secret: str = api.post(TOTP, headers=headers, json={"password": PASSWORD}).json()["secret"]
        steady_step()
        confirm = api.post(f"{TOTP}/confirm", headers=headers, json={"code": code(secret, -1)})
        assert confirm.status_code == 200, confirm.text
    return secret


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    root = tmp_path_factory.mktemp("cli-mfa")
    db_url = f"sqlite+aiosqlite:///{root / 'plane.db'}"
    env = {
        "ORGPLANE_MODE": "embedded",
        "ORGPLANE_DATA_DIR": str(root),
        "ORGPLANE_DATABASE_URL": db_url,
        "ORGPLANE_SECRET_KEY": "cli-mfa-secret",
        "ORGPLANE_LOG_LEVEL": "WARNING",
        "ORGPLANE_RECONCILER_ENABLED": "false",
    }
    with control_plane_process(env, log=root / "server.log") as url:
        asyncio.run(_seed(db_url))
        yield {"url": url, "secret": _enable_mfa(url)}


def _login(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    url: str,
    stdin: str,
    *extra: str,
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    status = main(["login", "--url", url, "--email", EMAIL, "--password-stdin", *extra])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return status, out, err


def _amr(config_home: Path) -> Any:
    stored = json.loads((config_home / "orgplane" / "credentials.json").read_text())
    return jwt.decode(stored["access_token"], options={"verify_signature": False})["amr"]


def test_login_prompts_for_the_code_or_takes_otp(
    server: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    url, secret = server["url"], server["secret"]
    steady_step()
    status, _, err = _login(capsys, monkeypatch, url, f"{PASSWORD}\n000000\n")
    assert status == 1
    assert "login failed: The one-time code is not correct" in err

    status, out, _ = _login(capsys, monkeypatch, url, f"{PASSWORD}\n{code(secret)}\n")
    assert status == 0, out
    assert "One-time code: " in out
    assert out.endswith(f"logged in to {url} as {EMAIL}\n")
    assert _amr(tmp_path) == ["pwd", "otp"]

    status, out, _ = _login(capsys, monkeypatch, url, f"{PASSWORD}\n", "--otp", code(secret, 1))
    assert status == 0, out
    assert "One-time code" not in out
    assert _amr(tmp_path) == ["pwd", "otp"]
