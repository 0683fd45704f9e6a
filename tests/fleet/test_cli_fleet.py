"""``orgplane versions`` and ``orgplane rollouts`` in-process against the control-plane app
(the CLI's HTTP client is the app's test client, as in tests/cli/test_cli_tokens.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.db.models import Instance, Org
from control_plane.settings import Settings
from control_plane.users.service import create_user
from tests.support.api import PASSWORD
from tests.support.cli import logged_in_cli, run

pytestmark = pytest.mark.parametrize("db_backend", ["sqlite"])
OLD, NEW = "orgplane-instance:old", "orgplane-instance:new"


async def _seed(db_url: str) -> None:
    engine = create_async_engine(db_url, poolclass=NullPool)
    async with AsyncSession(engine, expire_on_commit=False) as db:
        await create_user(db, email="ops@example.com", password=PASSWORD, is_platform_admin=True)
        for n in range(4):
            org = Org(slug=f"fleet-{n}", name=f"Fleet {n}", plan="team")
            db.add(org)
            await db.flush()
            db.add(Instance(org_id=org.id, provisioner="local", image=OLD))
        await db.commit()
    await engine.dispose()


@pytest.fixture
def plane(
    settings: Settings, database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[TestClient[Any]]:
    """The app, seeded, and the CLI's HTTP client pointed at it; the CLI logged in."""
    asyncio.run(_seed(database_url))
    with logged_in_cli(settings, monkeypatch, tmp_path, "ops@example.com") as client:
        yield client


def test_versions_and_rollouts_from_the_cli(
    plane: TestClient[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "versions", "add", "old", OLD)[0] == 0
    code, out, _ = run(capsys, "versions", "add", "new", NEW, "--notes", "faster")
    assert (code, out.startswith("registered new")) == (0, True)
    code, _, err = run(capsys, "versions", "add", "evil", "evil.example/x:1")
    assert code == 1
    assert "allow-list" in err
    listed = run(capsys, "versions", "list")[1]
    assert "old" in listed
    assert "4 orgs" in listed
    assert "faster" in listed
    assert "4 orgs" in run(capsys, "versions", "fleet")[1]
    assert run(capsys, "versions", "org", "fleet-1")[1].startswith("old  orgplane-instance:old")

    assert run(capsys, "versions", "pin", "fleet-3", "old")[1].strip() == "fleet-3 pinned to old"
    assert "(pinned to orgplane-instance:old)" in run(capsys, "versions", "org", "fleet-3")[1]
    code, _, err = run(capsys, "versions", "pin", "fleet-3", "nope")
    assert (code, "No such instance version" in err) == (1, True)
    code, _, err = run(capsys, "rollouts", "create", "--to", "nope")
    assert (code, "No version 'nope'" in err) == (1, True)
    code, _, err = run(capsys, "rollouts", "create", "--to", "new", "--waves", "50%,10%")
    assert (code, "cumulative" in err) == (1, True)
    code, out, _ = run(
        capsys,
        "rollouts",
        "create",
        "--to",
        "new",
        "--from",
        "old",
        "--orgs",
        "fleet-0,fleet-2,fleet-3",
        "--waves",
        "1,100%",
    )
    assert code == 0
    rollout_id = out.split()[0]
    assert "2 queued" in out
    assert "1 skipped" in out
    shown = run(capsys, "rollouts", "show", rollout_id)[1]
    assert "fleet-0" in shown
    assert "fleet-2" in shown
    assert "fleet-1" not in shown
    assert "pinned to orgplane-instance:old" in shown  # fleet-3, visibly skipped
    assert "paused" in run(capsys, "rollouts", "pause", rollout_id, "--reason", "wait")[1]
    assert "running" in run(capsys, "rollouts", "resume", rollout_id)[1]
    assert "rolling_back" in run(capsys, "rollouts", "rollback", rollout_id)[1]
    code, _, err = run(capsys, "rollouts", "pause", rollout_id)
    assert (code, "cannot pause" in err) == (1, True)
    assert rollout_id in run(capsys, "rollouts", "list")[1]
    assert run(capsys, "versions", "unpin", "fleet-3")[1].strip() == "fleet-3 unpinned"
    assert "(pinned" not in run(capsys, "versions", "org", "fleet-3")[1]
