"""``orgplane tokens create|list|revoke`` in-process against the control-plane app: the CLI's
HTTP client is the app's test client, so no server process or port is needed (the CLI's HTTP
behaviour against a real process is tests/cli/test_cli_session.py's subject)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.db.models import Membership, Org
from control_plane.settings import Settings
from control_plane.tokens.grants import PERSONAL_TOKEN_TYPE, TOKEN_EXCHANGE_GRANT
from control_plane.users.service import create_user
from tests.support.api import PASSWORD
from tests.support.cli import logged_in_cli, run

pytestmark = pytest.mark.parametrize("db_backend", ["sqlite"])


async def _seed(db_url: str) -> None:
    engine = create_async_engine(db_url, poolclass=NullPool)
    async with AsyncSession(engine, expire_on_commit=False) as db:
        dev = await create_user(db, email="dev@example.com", password=PASSWORD)
        for slug, plan in (("acme", "team"), ("beta", "team")):
            org = Org(slug=slug, name=slug.title(), plan=plan)
            db.add(org)
            await db.flush()
            db.add(Membership(user_id=dev.id, org_id=org.id, role="owner"))
        await db.commit()
    await engine.dispose()


@pytest.fixture
def plane(
    settings: Settings, database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[TestClient[Any]]:
    """The app, seeded, and the CLI's HTTP client pointed at it; the CLI logged in."""
    asyncio.run(_seed(database_url))
    with logged_in_cli(settings, monkeypatch, tmp_path, "dev@example.com") as client:
        yield client


def _exchange(client: TestClient[Any], token: str, slug: str) -> httpx.Response:
    form = {
        "grant_type": TOKEN_EXCHANGE_GRANT,
        "subject_token": token,
        "subject_token_type": PERSONAL_TOKEN_TYPE,
        "audience": f"org:{slug}",
    }
    return client.post("/oauth/token", data=form)


def test_create_list_and_revoke(
    plane: TestClient[Any], capsys: pytest.CaptureFixture[str], db_backend: str
) -> None:
    code, out, err = run(capsys, "tokens", "create", "ci", "--org", "acme", "--scope", "org:read")
    assert code == 0, err
    token = out.strip()
    assert token.startswith("opat_")
    assert "\n" not in token
    assert "shown only this once" in err
    assert token not in err
    assert _exchange(plane, token, "acme").json()["scope"] == "org:read"
    assert _exchange(plane, token, "beta").json()["error"] == "invalid_target"

    code, out, _ = run(capsys, "tokens", "list")
    assert code == 0
    header, row = out.splitlines()
    assert header.split()[:4] == ["ID", "NAME", "ORGANIZATIONS", "SCOPES"]
    token_id, name, orgs, scopes = row.split()[:4]
    assert (name, orgs, scopes) == ("ci", "acme", "org:read")
    assert token not in out
    assert "never" not in row  # the exchange above used it

    code, out, _ = run(capsys, "tokens", "revoke", token_id)
    assert (code, out) == (0, f"revoked {token_id}\n")
    assert _exchange(plane, token, "acme").json()["error"] == "invalid_request"
    assert run(capsys, "tokens", "list")[1] == "you have no personal access tokens\n"
    code, _, err = run(capsys, "tokens", "revoke", token_id)
    assert (code, err) == (1, "orgplane: No such personal access token.\n")


def test_all_orgs_and_clear_failures(
    plane: TestClient[Any], capsys: pytest.CaptureFixture[str], db_backend: str
) -> None:
    code, out, _ = run(capsys, "tokens", "create", "all", "--all-orgs", "--days", "7")
    assert code == 0
    token = out.strip()
    for slug in ("acme", "beta"):
        assert _exchange(plane, token, slug).json()["scope"] == "org:read org:write"
    assert "(all)" in run(capsys, "tokens", "list")[1]
    code, _, err = run(capsys, "tokens", "create", "x")
    assert (code, err) == (
        1,
        "orgplane: name the organizations with --org SLUG (repeatable), or give --all-orgs\n",
    )
    code, _, err = run(capsys, "tokens", "create", "x", "--org", "nope")
    assert (code, err) == (1, "orgplane: unknown organization or not yours: nope\n")
    code, _, err = run(capsys, "tokens", "create", "x", "--all-orgs", "--days", "9999")
    assert (code, err) == (1, "orgplane: A personal access token lives at most 366 days.\n")
