"""Branding in the control-plane UI: the switcher and the org page show the display name, logo
and colour in force; admins change them through forms; bad input is shown, nothing changes."""

from __future__ import annotations

import re
from typing import Any

from litestar.testing import AsyncTestClient

from tests.support.api import add_user, login
from tests.support.images import image_bytes
from tests.ui.forms import csrf_token, submit, ui_login

Client = AsyncTestClient[Any]


async def test_the_switcher_and_the_org_page_show_the_branding_in_force(client: Client) -> None:
    await add_user(client, "root@example.com", admin=True)
    admin = await login(client, "root@example.com")
    for body in ({"name": "Acme", "slug": "acme", "plan": "team"},
                 {"name": "Acme Eng", "slug": "acme-eng", "parent_id": "acme"}):  # fmt: skip
        assert (await client.post("/api/v1/orgs", json=body, headers=admin)).status_code == 202
    await client.post("/api/v1/orgs/acme/members", headers=admin,
                      json={"email": "root@example.com", "role": "owner"})  # fmt: skip
    await ui_login(client, "root@example.com")

    # Through the form: the parent's display name and colour, and a logo.
    saved = await submit(client, "/ui/orgs/acme", "/ui/orgs/acme/branding",
                         display_name="Acme <Corp>", primary_color="#003366",
                         contact_email="")  # fmt: skip
    assert saved.status_code == 303, saved.text
    token = await csrf_token(client, "/ui/orgs/acme")
    uploaded = await client.post(
        "/ui/orgs/acme/branding/logo",
        data={"_csrf_token": token, "op": "upload"},
        files={"logo": ("logo.png", image_bytes(), "image/png")},
        follow_redirects=False,
    )
    assert uploaded.status_code == 303, uploaded.text
    logo_url = (await client.get("/api/v1/orgs/acme/branding", headers=admin)).json()["own"][
        "logo_url"
    ]

    # The child inherits all of it: its page and the switcher show it, escaped.
    child = await client.get("/ui/orgs/acme-eng")
    assert child.status_code == 200
    assert "<title>Acme &lt;Corp&gt;" in child.text
    assert "Acme <Corp>" not in child.text
    assert f'src="{logo_url}"' in child.text
    assert 'fill="#003366"' in child.text  # the band in the primary colour
    assert re.search(r"from <a href=\"/ui/orgs/acme\">acme</a>", child.text)
    switcher = await client.get("/ui/orgs")
    assert switcher.text.count(f'src="{logo_url}"') == 2
    assert 'aria-label="Open Acme &lt;Corp&gt;"' in switcher.text
    # No style attribute anywhere (the CSP forbids them): colours are SVG attributes.
    assert "style=" not in child.text
    assert "style=" not in switcher.text

    # The child's own colour, without a logo of its own: its initial on its colour.
    await submit(client, "/ui/orgs/acme-eng", "/ui/orgs/acme-eng/branding",
                 display_name="Eng", primary_color="#ffcc00", contact_email="")  # fmt: skip
    own = await client.get("/ui/orgs/acme-eng")
    assert 'fill="#ffcc00"' in own.text
    assert "#111111" in own.text  # the readable text colour on yellow
    assert "(set here)" in own.text


async def test_bad_branding_from_the_form_is_shown_and_changes_nothing(client: Client) -> None:
    await add_user(client, "root@example.com", admin=True)
    admin = await login(client, "root@example.com")
    made = await client.post("/api/v1/orgs", json={"name": "Acme", "slug": "acme"}, headers=admin)
    assert made.status_code == 202
    await ui_login(client, "root@example.com")
    before = (await client.get("/api/v1/orgs/acme/branding", headers=admin)).json()
    bad = await submit(client, "/ui/orgs/acme", "/ui/orgs/acme/branding",
                       display_name="Acme", primary_color="blue", contact_email="")  # fmt: skip
    assert bad.status_code == 400
    assert "#rrggbb" in bad.text
    token = await csrf_token(client, "/ui/orgs/acme")
    hostile = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>'
    refused = await client.post(
        "/ui/orgs/acme/branding/logo",
        data={"_csrf_token": token, "op": "upload"},
        files={"logo": ("logo.svg", hostile, "image/svg+xml")},
        follow_redirects=False,
    )
    assert refused.status_code == 400
    assert "onload" in refused.text
    after = (await client.get("/api/v1/orgs/acme/branding", headers=admin)).json()
    assert after == before
