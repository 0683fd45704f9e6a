"""JSON answers carry nosniff; cookies are Secure whenever the public URL is https."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from control_plane.app import create_app
from control_plane.ui.session import cookie_secure
from tests.support.api import add_user


async def test_every_json_answer_carries_nosniff(client: AsyncTestClient[Any]) -> None:
    """Failed on the old code: API answers and errors had no X-Content-Type-Options."""
    await add_user(client, "alice@example.com")
    for path in ("/api/v1/me", "/api/v1/orgs", "/.well-known/jwks.json", "/healthz", "/nope"):
        answer = await client.get(path)
        assert answer.headers.get_list("x-content-type-options") == ["nosniff"], path
    page = await client.get("/ui/login")
    assert page.headers.get_list("x-content-type-options") == ["nosniff"]


@pytest.mark.parametrize("db_backend", ["sqlite"])
async def test_cookies_are_secure_when_the_public_url_is_https(
    make_settings: Any, db_backend: str
) -> None:
    """Behind a TLS proxy the app sees http while the browser uses https (the public URL says
    so). Failed on the old code: the CSRF cookie was not Secure, and neither would the session
    cookie be (``cookie_secure`` answered False for an http request)."""
    settings = make_settings(ORGPLANE_PUBLIC_URL="https://orgplane.example.com")
    async with AsyncTestClient(create_app(settings), base_url="http://127.0.0.1:8080") as client:
        page = await client.get("/ui/login")
        csrf = [c.lower() for c in page.headers.get_list("set-cookie")]
        assert csrf
        assert all("; secure" in c for c in csrf), csrf
        assert cookie_secure(client.app.state.runtime, "http") is True
