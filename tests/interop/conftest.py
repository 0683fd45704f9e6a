"""A control plane on SQLite in the test's loop, a user, an org, and tokens to check."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from control_plane.db.models import Membership, Org
from control_plane.settings import Settings
from control_plane.users.service import create_user
from tests.interop.servers import app_in_this_loop, runtime_of_app
from tests.support.api import PASSWORD

ISSUER = "http://127.0.0.1:8080"


@pytest.fixture(params=["ES256", "EdDSA"])
def signing_alg(request: pytest.FixtureRequest) -> str:
    """Every interop test runs with both signing algorithms."""
    return str(request.param)


@pytest.fixture
async def plane(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, signing_alg: str
) -> AsyncIterator[dict[str, Any]]:
    """The app, an HTTP client bound to it, and ``alice`` (owner of org ``acme``) logged in."""
    for key, value in {
        "ORGPLANE_MODE": "embedded",
        "ORGPLANE_DATA_DIR": str(tmp_path),
        "ORGPLANE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'interop.db'}",
        "ORGPLANE_SECRET_KEY": "interop-secret",
        "ORGPLANE_SIGNING_ALG": signing_alg,
        "ORGPLANE_LOG_LEVEL": "WARNING",
        "ORGPLANE_RECONCILER_ENABLED": "false",
    }.items():
        monkeypatch.setenv(key, value)
    async with app_in_this_loop(Settings()) as (app, client):
        async with runtime_of_app(app).sessions() as db:
            user = await create_user(db, email="alice@example.com", password=PASSWORD)
            org = Org(slug="acme", name="Acme", features={"beta_search": True})
            db.add(org)
            await db.flush()
            db.add(Membership(user_id=user.id, org_id=org.id, role="owner"))
            await db.commit()
        login = await client.post(
            "/api/v1/auth/login", json={"email": "alice@example.com", "password": PASSWORD}
        )
        assert login.status_code == 200, login.text
        yield {
            "app": app,
            "client": client,
            "login": login.json(),
            "user_id": user.id,
            "org_id": org.id,
            "transport": httpx.ASGITransport(app=app),
        }
