"""The control plane reaches an instance where the backend says it is now: a container
restarted outside the reconciler (by an operator, or by its engine's restart policy) is
published on a new host port, and every later probe, backup or log call must use that one."""

from __future__ import annotations

from typing import Any

import pytest

from control_plane.db.models import Instance
from tests.reconciler.test_settings_effects import FAST, add_org, reconciling
from tests.support.api import direct_db
from tests.support.wait import eventually


async def test_a_moved_instance_is_reached_at_its_new_endpoint(
    make_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with reconciling(monkeypatch, make_settings(**FAST)) as (client, backend):
        org_id = await add_org(client)

        async def endpoint() -> str:
            async with direct_db(client) as db:
                row = await db.get(Instance, org_id)
                return row.endpoint if row is not None else ""

        async def at(wanted: str) -> bool:
            return await endpoint() == wanted

        await eventually(lambda: at("http://127.0.0.1:9"), what="the applied endpoint")
        backend.endpoint = "http://127.0.0.1:10"  # restarted: published on another port
        await eventually(lambda: at("http://127.0.0.1:10"), what="the endpoint followed")
        assert backend.specs[org_id].org_id == org_id  # no re-apply was needed to follow it
