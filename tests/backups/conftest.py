"""A live control plane with local org instances and a backup store in the test's directory."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.backups.live import Live, admin_headers
from tests.support.live import FAST_RECONCILER, serve_control_plane


@pytest.fixture
def db_backend() -> str:
    """End-to-end backups run on SQLite; the slot claim test covers PostgreSQL too."""
    return "sqlite"


@pytest.fixture
def start_live(
    make_settings: Any, unused_tcp_port: int, tmp_path: Path
) -> Callable[..., AbstractAsyncContextManager[Live]]:
    """Start a control plane with ``extra`` settings (after the test set its environment)."""

    @asynccontextmanager
    async def start(**extra: str) -> AsyncIterator[Live]:
        settings = make_settings(
            **FAST_RECONCILER,
            ORGPLANE_PORT=str(unused_tcp_port),
            ORGPLANE_DEPLOYMENT_ID=f"t-{uuid.uuid4().hex[:8]}",
            ORGPLANE_BACKUP_DIR=str(tmp_path / "backups"),
            **extra,
        )
        async with serve_control_plane(settings, unused_tcp_port) as app:
            base = f"http://127.0.0.1:{unused_tcp_port}"
            async with httpx.AsyncClient(base_url=base, timeout=60) as http:
                yield Live(http=http, app=app, admin=await admin_headers(app, http))

    return start


@pytest.fixture
async def live(start_live: Callable[..., AbstractAsyncContextManager[Live]]) -> AsyncIterator[Live]:
    """A live control plane with default backup settings."""
    async with start_live() as served:
        yield served
