"""Hibernation stops an instance only once Traefik routes its org to the wake endpoint
(control_plane/routing/handover.py), on the app without a reconciler: what Traefik's polls of
the HTTP provider note, and what the reconciler's check answers from it. Through a real Traefik
this is tests/routing/test_through_traefik.py and tests/e2e/test_compose_up.py."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from control_plane.db.models import Org, utcnow
from control_plane.routing import handover
from control_plane.runtime import resolve_secret
from control_plane.settings import Settings
from provisioners.traefik import ASLEEP_PRIORITY, WAKE_PREFIX, router_name
from tests.routing.helpers import BASE_DOMAIN, ROUTING_TOKEN, add_org
from tests.support.api import direct_db, runtime_of


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    result: Settings = make_settings(
        ORGPLANE_BASE_DOMAIN=BASE_DOMAIN, ORGPLANE_ROUTING_TOKEN=ROUTING_TOKEN
    )
    return result


async def poll(client: AsyncTestClient[Any]) -> dict[str, Any]:
    """Traefik's poll of the HTTP provider."""
    answer = await client.get(
        "/api/v1/routing/traefik", headers={"Authorization": f"Bearer {ROUTING_TOKEN}"}
    )
    assert answer.status_code == 200, answer.text
    routers: dict[str, Any] = answer.json().get("http", {}).get("routers", {})  # {}: no org
    return routers


async def org(client: AsyncTestClient[Any], org_id: str) -> Org:
    async with direct_db(client) as db:
        found = await db.get(Org, org_id)
        assert found is not None
        return found


async def test_without_traefik_polling_a_hibernating_instance_stops_at_once(
    client: AsyncTestClient[Any],
) -> None:
    org_id = await add_org(client, "nap", phase="stopping", hibernated_at=utcnow())
    assert await handover.handed_over(runtime_of(client).routing, await org(client, org_id))


async def test_the_instance_stops_once_traefik_has_applied_the_wake_route(
    client: AsyncTestClient[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = runtime_of(client).routing
    began = utcnow()
    # Traefik polled before the hibernation began: that answer still routed to the instance.
    running = await add_org(client, "busy", phase="running", endpoint="http://127.0.0.1:9")
    await poll(client)
    nap = await add_org(client, "nap", phase="stopping", hibernated_at=began)
    assert not await handover.handed_over(store, await org(client, nap))

    routers = await poll(client)  # the first answer with the wake route, above the org's own
    assert routers[router_name(slug="nap", org_id=nap) + "-wake"]["priority"] == ASLEEP_PRIORITY
    assert router_name(slug="busy", org_id=running) in routers
    # Served, but Traefik applies it only after its providers throttle.
    assert not await handover.handed_over(store, await org(client, nap))
    monkeypatch.setattr(handover, "TRAEFIK_APPLIES", timedelta(0))
    assert await handover.handed_over(store, await org(client, nap))

    # Hibernated again later: the answer served for the first hibernation proves nothing.
    async with direct_db(client) as db:
        row = await db.get(Org, nap)
        assert row is not None
        row.hibernated_at = utcnow() + timedelta(seconds=1)
        await db.commit()
    assert not await handover.handed_over(store, await org(client, nap))


async def test_a_hibernation_traefik_never_sees_stops_after_the_bound(
    client: AsyncTestClient[Any],
) -> None:
    store = runtime_of(client).routing
    await poll(client)
    late = utcnow() - handover.HANDOVER_BOUND - timedelta(seconds=1)
    stuck = await add_org(client, "stuck", phase="stopping", hibernated_at=late)
    recent = await add_org(client, "recent", phase="stopping", hibernated_at=utcnow())
    assert await handover.handed_over(store, await org(client, stuck))
    assert not await handover.handed_over(store, await org(client, recent))


async def test_with_a_probe_the_stop_waits_for_what_traefik_answers(
    client: AsyncTestClient[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = runtime_of(client).routing
    monkeypatch.setattr(handover, "TRAEFIK_APPLIES", timedelta(0))
    seen: list[str] = []
    answer = False

    async def probe(row: Org) -> bool:
        seen.append(row.id)
        return answer

    await poll(client)
    nap = await add_org(client, "nap", phase="stopping", hibernated_at=utcnow())
    # Not served yet: no probe (it would reach the running instance).
    assert not await handover.handed_over(store, await org(client, nap), probe=probe)
    assert seen == []
    await poll(client)
    # Served, and the estimate says applied; the probe does not see the wake endpoint yet.
    assert not await handover.handed_over(store, await org(client, nap), probe=probe)
    assert seen == [nap]
    answer = True
    assert await handover.handed_over(store, await org(client, nap), probe=probe)


async def test_the_wake_endpoint_acknowledges_only_this_hibernations_probe(
    client: AsyncTestClient[Any], settings: Settings
) -> None:
    secret = resolve_secret(settings)
    began = utcnow()
    nap = await add_org(client, "nap", phase="stopping", hibernated_at=began)
    host = {"Host": f"nap.{BASE_DOMAIN}"}

    token = handover.probe_token(secret, org_id=nap, hibernated_at=began)
    acked = await client.get(f"{WAKE_PREFIX}/", headers={**host, handover.PROBE_HEADER: token})
    assert acked.status_code == 204, acked.text
    assert acked.headers[handover.ACK_HEADER] == handover.probe_ack(secret, token)
    assert (await org(client, nap)).hibernated_at is not None  # the probe woke nothing

    # A token of an earlier hibernation (or a guessed one) is an ordinary request: no ack.
    stale = handover.probe_token(secret, org_id=nap, hibernated_at=began - timedelta(hours=1))
    other = await client.get(
        f"{WAKE_PREFIX}/", headers={**host, handover.PROBE_HEADER: stale, "Accept": "text/html"}
    )
    assert handover.ACK_HEADER.lower() not in {k.lower() for k in other.headers}
    assert other.status_code == 503  # the starting page: the request woke the org
    assert (await org(client, nap)).hibernated_at is None


async def test_with_a_probe_a_quiet_http_provider_is_waited_for(
    client: AsyncTestClient[Any],
) -> None:
    """A declared Traefik that has not polled lately (starting, or backing off) is waited for,
    up to the bound; without a probe, no poll means no Traefik, and the stop is at once."""
    store = runtime_of(client).routing

    async def probe(row: Org) -> bool:
        raise AssertionError("probed before Traefik fetched the wake route")

    nap = await org(client, await add_org(client, "nap", phase="stopping", hibernated_at=utcnow()))
    assert await handover.handed_over(store, nap)
    assert not await handover.handed_over(store, nap, probe=probe)
    late = utcnow() - handover.HANDOVER_BOUND - timedelta(seconds=1)
    stuck = await org(client, await add_org(client, "stuck", phase="stopping", hibernated_at=late))
    assert await handover.handed_over(store, stuck, probe=probe)
