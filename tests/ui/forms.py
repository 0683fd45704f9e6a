"""Driving the UI's HTML forms from an HTTP client, as a browser without JavaScript would."""

from __future__ import annotations

import re
from typing import Any

from tests.support.api import PASSWORD

CSRF_FIELD = re.compile(r'name="_csrf_token" value="([^"]+)"')


async def csrf_token(client: Any, path: str) -> str:
    """The CSRF token of the form on ``path``."""
    page = await client.get(path)
    assert page.status_code == 200, page.text
    found = CSRF_FIELD.search(page.text)
    assert found, "the page has no CSRF field"
    return found.group(1)


async def submit(client: Any, form_page: str, action: str, **fields: str) -> Any:
    """Post ``fields`` to ``action`` with the CSRF token of the form on ``form_page``."""
    token = await csrf_token(client, form_page)
    return await client.post(action, data={"_csrf_token": token, **fields}, follow_redirects=False)


async def ui_login(client: Any, email: str, password: str = PASSWORD) -> Any:
    """Sign in through the login form; answers the redirect."""
    answer = await submit(
        client, "/ui/login", "/ui/login", email=email, password=password, next="/ui/"
    )
    assert answer.status_code == 303, answer.text
    return answer
