"""Small helpers for driving the control-plane API in tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.runtime import Runtime
from control_plane.users.service import create_user

PASSWORD = "correct horse battery"


def runtime_of(client: AsyncTestClient[Any]) -> Runtime:
    """The runtime of the app behind ``client`` (its engine belongs to the app's loop)."""
    runtime: Runtime = client.app.state.runtime
    return runtime


@asynccontextmanager
async def direct_db(client: AsyncTestClient[Any]) -> AsyncIterator[AsyncSession]:
    """A session on the app's database from the test's own event loop."""
    engine = create_async_engine(
        str(runtime_of(client).engine.url.render_as_string(hide_password=False)), poolclass=NullPool
    )
    try:
        async with AsyncSession(engine, expire_on_commit=False) as session:
            yield session
    finally:
        await engine.dispose()


async def add_user(
    client: AsyncTestClient[Any], email: str, *, admin: bool = False, password: str = PASSWORD
) -> str:
    """Create a user straight in the database; returns its id."""
    async with direct_db(client) as db:
        user = await create_user(db, email=email, password=password, is_platform_admin=admin)
        await db.commit()
        return user.id


async def login(
    client: AsyncTestClient[Any], email: str, password: str = PASSWORD
) -> dict[str, str]:
    """Authorization headers of a fresh login."""
    response = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def assert_problem(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """Assert ``response`` is problem+json with ``status`` (and ``code``); return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    if code is not None:
        assert body["code"] == code, body
    assert "Traceback" not in response.text
    return body
