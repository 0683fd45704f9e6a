"""Fixtures of the SSO tests: a real OpenID provider (oidc-provider on Node.js) and the
control plane's configuration of it, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from litestar.testing import AsyncTestClient

from tests.support.idp import CLIENT_ID, CLIENT_SECRET, Idp, run_idp, sign_in_headless

#: The in-process app's URL (the ``client`` fixture's base URL and the settings' default).
BASE = "http://127.0.0.1:8080"
CALLBACK = f"{BASE}/ui/auth/sso/acme/callback"


@pytest.fixture
async def idp(tmp_path: Path) -> AsyncIterator[Idp]:
    """A running provider whose client sends users back to the ``acme`` provider's callback."""
    async with run_idp(tmp_path, [CALLBACK]) as running:
        yield running


async def add_provider(
    client: AsyncTestClient[Any], admin: dict[str, str], idp: Idp, **body: Any
) -> dict[str, Any]:
    """Configure ``idp`` as the provider ``acme`` (201)."""
    answer = await client.post(
        "/api/v1/identity-providers",
        headers=admin,
        json={
            "slug": "acme",
            "display_name": "Acme SSO",
            "discovery_url": idp.discovery_url,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "scopes": ["openid", "email", "profile", "groups"],
            **body,
        },
    )
    assert answer.status_code == 201, answer.text
    provider: dict[str, Any] = answer.json()
    return provider


@pytest.fixture
async def provider(client: AsyncTestClient[Any], admin: dict[str, str], idp: Idp) -> dict[str, Any]:
    """``idp`` configured as ``acme``, just-in-time accounts on, any domain."""
    return await add_provider(client, admin, idp)


async def sso_sign_in(client: AsyncTestClient[Any], account: str, slug: str = "acme") -> Any:
    """Sign ``account`` in through the real redirect flow (the provider walked with plain
    HTTP); answers the control plane's answer to the callback."""
    start = await client.get(f"/ui/auth/sso/{slug}/start?next=/ui/orgs", follow_redirects=False)
    assert start.status_code == 303, start.text
    back = await sign_in_headless(start.headers["location"], account, CALLBACK)
    parts = urlsplit(back)
    return await client.get(f"{parts.path}?{parts.query}", follow_redirects=False)
