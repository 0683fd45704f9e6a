"""Helpers for the end-to-end backup tests: a live control plane with local instances, and
reading and writing an org's data through its instance's API."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from tests.reconciler.test_lifecycle_local import admin_headers, org_token, wait_phase
from tests.support.wait import WaitTimeout, eventually


@dataclass
class Live:
    """A served control plane: its HTTP client, app and a platform admin's headers."""

    http: httpx.AsyncClient
    app: Any
    admin: dict[str, str]


async def new_org(live: Live, slug: str) -> str:
    """Create an org and wait for its instance; returns its id."""
    created = await live.http.post(
        "/api/v1/orgs", headers=live.admin, json={"name": slug.title(), "slug": slug}
    )
    assert created.status_code == 202, created.text
    await wait_phase(live.http, live.admin, slug, "running", timeout=60)
    return str(created.json()["id"])


async def instance_client(live: Live, slug: str) -> httpx.AsyncClient:
    """A client for the org's instance carrying a fresh org token of the admin."""
    body = (await live.http.get(f"/api/v1/orgs/{slug}/instance", headers=live.admin)).json()
    token = await org_token(live.http, live.admin, slug)
    return httpx.AsyncClient(
        base_url=body["endpoint"], headers={"Authorization": f"Bearer {token}"}, timeout=20
    )


async def write_data(live: Live, slug: str, *, title: str, file_body: bytes) -> None:
    """One chat session called ``title``, one file with ``file_body``."""
    async with await instance_client(live, slug) as inst:
        made = await inst.post("/api/v1/sessions", json={"title": title})
        assert made.status_code == 201, made.text
        up = await inst.post("/api/v1/files", params={"name": f"{title}.bin"}, content=file_body)
        assert up.status_code == 201, up.text


async def read_data(live: Live, slug: str) -> tuple[list[str], dict[str, bytes]]:
    """Session titles and file contents by name, as the org's API answers them now."""
    async with await instance_client(live, slug) as inst:
        sessions = await inst.get("/api/v1/sessions")
        assert sessions.status_code == 200, sessions.text
        files = (await inst.get("/api/v1/files")).json()["items"]
        contents = {}
        for item in files:
            got = await inst.get(f"/api/v1/files/{item['id']}/content")
            contents[item["name"]] = got.content
        return sorted(s["title"] for s in sessions.json()["items"]), contents


async def wait_serving(live: Live, slug: str, timeout: float = 60.0) -> None:
    """Wait until the org is running and its API answers (after its instance came back)."""
    last: Any = None

    async def serving() -> bool:
        nonlocal last
        try:
            await wait_phase(live.http, live.admin, slug, "running", timeout=5)
            async with await instance_client(live, slug) as inst:
                last = await inst.get("/api/v1/sessions")
                return bool(last.status_code == 200)
        except (AssertionError, httpx.HTTPError) as exc:
            last = exc
            return False

    try:
        await eventually(serving, what=f"{slug} serving again", timeout=timeout, interval=0.3)
    except WaitTimeout as exc:
        raise WaitTimeout(f"{exc}; last answer: {last}") from None


__all__ = ["Live", "admin_headers", "new_org", "read_data", "wait_phase", "write_data"]


async def set_limits(
    live: Live, slug: str, limits: dict[str, int], *, quota: Callable[[Any], bool]
) -> None:
    """Set the org's limit overrides and wait until its instance's storage quota passes
    ``quota``: limits reach an instance with its next heartbeat's answer, not with the PATCH."""
    patched = await live.http.patch(
        f"/api/v1/orgs/{slug}", headers=live.admin, json={"limits": limits}
    )
    assert patched.is_success, patched.text

    async def enforced() -> bool:
        async with await instance_client(live, slug) as inst:
            usage = await inst.get("/api/v1/usage")
            return quota(usage.json()["limits"].get("max_storage_bytes"))

    await eventually(enforced, what=f"{slug}'s instance enforcing {limits}", timeout=60)
