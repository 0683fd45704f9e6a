"""Slugs that equal a label of the platform's own hosts, or a configured name, are refused."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from control_plane.settings import Settings
from tests.support.api import assert_problem


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    result: Settings = make_settings(
        ORGPLANE_PUBLIC_URL="https://cp.platform-example.net",
        ORGPLANE_WAKE_URL="http://wake-svc.cluster:8080",
        ORGPLANE_INSTANCE_CONTROL_PLANE_URL="http://10.0.0.5:8080",
        ORGPLANE_RESERVED_SLUGS='["billing-two"]',
    )
    return result


async def test_labels_of_the_platforms_hosts_are_reserved(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    """Failed on the old code: ``wake-svc`` and ``platform-example`` were accepted (202), so an
    org could be reached at a name that passes for the platform's own host."""
    for slug in ("platform-example", "wake-svc", "Cluster", "billing-two"):
        refused = await client.post("/api/v1/orgs", headers=admin, json={"name": "X", "slug": slug})
        assert_problem(refused, 400, "slug_reserved")
    ok = await client.post("/api/v1/orgs", headers=admin, json={"name": "A", "slug": "acme"})
    assert ok.status_code == 202, ok.text
    listed = await client.get("/api/v1/orgs", headers=admin)
    assert [o["slug"] for o in listed.json()["items"]] == ["acme"]
