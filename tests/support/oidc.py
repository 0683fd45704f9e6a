"""Driving the OpenID provider in tests: registering a client, signing a user in to the UI,
and walking a browser's part of ``/oauth/authorize`` with an HTTP client."""

from __future__ import annotations

import html
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.support.api import PASSWORD

CSRF_FIELD = re.compile(r'name="_csrf_token" value="([^"]+)"')
REDIRECT_URI = "http://127.0.0.1:47401/callback"


async def register_client(
    client: Any, admin: dict[str, str], *, public: bool = False, **fields: Any
) -> dict[str, Any]:
    """Register an OAuth client through the admin API; answers the created client (with its
    secret, if confidential)."""
    body = {
        "name": "Wiki",
        "type": "public" if public else "confidential",
        "redirect_uris": [REDIRECT_URI],
        "first_party": True,
        **fields,
    }
    answer = await client.post("/api/v1/oauth/clients", json=body, headers=admin)
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


async def ui_sign_in(client: Any, email: str, password: str = PASSWORD) -> None:
    """Sign ``client`` (which keeps cookies) in to the UI through the login form."""
    form = await client.get("/ui/login")
    token = CSRF_FIELD.search(form.text)
    assert token, form.text
    answer = await client.post(
        "/ui/login",
        data={"_csrf_token": token.group(1), "email": email, "password": password, "next": "/ui/"},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text


async def follow_to_client(client: Any, url: str, *, hops: int = 5) -> Any:
    """GET ``url`` and follow the control plane's own redirects (at most ``hops``); answers the
    first response that is not one, or the redirect that leaves for the client."""
    answer = await client.get(url, follow_redirects=False)
    for _ in range(hops):
        location = answer.headers.get("location", "")
        if answer.status_code not in (302, 303) or location.startswith(REDIRECT_URI):
            return answer
        answer = await client.get(location, follow_redirects=False)
    raise AssertionError(f"more than {hops} redirects from {url}")


def callback_params(answer: Any) -> dict[str, str]:
    """The query parameters of a redirect back to the client."""
    assert answer.status_code == 303, answer.text
    location = answer.headers["location"]
    assert location.startswith(REDIRECT_URI + "?"), location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def consent(client: Any, page: Any, decision: str = "allow") -> Any:
    """Answer the consent page ``page`` with ``decision``; answers the redirect."""
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
    data = {k: html.unescape(v) for k, v in fields.items()}
    return await client.post(
        "/ui/oauth/authorize", data={**data, "decision": decision}, follow_redirects=False
    )
