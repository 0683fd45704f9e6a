"""Branding export and import: an org's own branding and logo moved as one document, checked
whole before anything is written."""

from __future__ import annotations

import base64
from typing import Any

from litestar.testing import AsyncTestClient

from tests.branding.test_branding_api import branding_rows
from tests.support.api import assert_problem
from tests.support.images import image_bytes
from tests.support.orgs import make_org


async def test_branding_exported_from_one_org_is_imported_into_another(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    await make_org(client, admin, "corp", plan="team")
    await make_org(client, admin, "corp-eng", parent_id="corp")
    await make_org(client, admin, "moved")
    await client.put("/api/v1/orgs/corp/branding", headers=admin,
                     json={"display_name": "Corp", "primary_color": "#abcdef"})  # fmt: skip
    await client.put("/api/v1/orgs/corp-eng/branding", headers=admin, json={
        "display_name": "Eng", "contact_email": "eng@corp.example",
        "metadata": {"cost_centre": "42", "eu": True}})  # fmt: skip
    logo = image_bytes((5, 5), (1, 2, 3))
    await client.put("/api/v1/orgs/corp-eng/branding/logo", headers=admin, content=logo)
    exported = await client.get("/api/v1/orgs/corp-eng/branding/export", headers=admin)
    assert exported.status_code == 200, exported.text
    doc = exported.json()
    assert doc["format"] == "orgplane-branding/1"
    # Its own values only: the colour it inherits from corp is not in it.
    assert doc["branding"] == {
        "display_name": "Eng",
        "primary_color": None,
        "contact_email": "eng@corp.example",
        "metadata": {"cost_centre": "42", "eu": True},
    }
    assert doc["logo"]["content_type"] == "image/png"

    imported = await client.put("/api/v1/orgs/moved/branding/import", headers=admin, json=doc)
    assert imported.status_code == 200, imported.text
    source = (await client.get("/api/v1/orgs/corp-eng/branding", headers=admin)).json()
    target = imported.json()
    assert target["own"] == source["own"]  # the same logo URL: the same bytes
    assert target["resolved"]["primary_color"] is None  # "moved" has no parent to inherit from


async def test_a_bad_document_is_refused_whole_and_changes_nothing(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    await make_org(client, admin, "corp")
    await client.put("/api/v1/orgs/corp/branding", headers=admin, json={"display_name": "Corp"})
    before = await branding_rows(client)
    hostile = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    good = {"display_name": "New", "primary_color": "#000000"}
    cases: list[tuple[dict[str, Any], int, str | None]] = [
        ({"format": "orgplane-branding/1", "branding": good,
          "logo": {"content_type": "image/png", "data": base64.b64encode(hostile).decode()}},
         400, "logo_svg_unsafe"),
        ({"format": "orgplane-branding/1", "branding": {**good, "primary_color": "black"}},
         400, "invalid_color"),
        ({"format": "orgplane-branding/2", "branding": good}, 400, None),
        ({"format": "orgplane-branding/1", "branding": good,
          "logo": {"content_type": "image/png", "data": "not base64!"}}, 400, None),
    ]  # fmt: skip
    for body, status, code in cases:
        answer = await client.put("/api/v1/orgs/corp/branding/import", headers=admin, json=body)
        problem = assert_problem(answer, status, code)
        assert problem["status"] == status
    assert await branding_rows(client) == before
