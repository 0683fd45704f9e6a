"""Routing of hibernated orgs, the wake endpoint and the wake/hibernate actions, on the app
without a reconciler (the reconciler's side is in test_lifecycle_local.py)."""

from __future__ import annotations

import asyncio
import re
import threading
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlmodel import select

from control_plane.db.models import AuditEvent, InstanceEvent, Org, utcnow
from control_plane.settings import Settings
from provisioners.traefik import (
    ASLEEP_PRIORITY,
    UNAVAILABLE_SERVICE,
    WAKE_MIDDLEWARE,
    WAKE_PREFIX,
    WAKE_SERVICE,
    Route,
    docker_labels,
    dynamic_config,
    router_name,
)
from tests.routing.helpers import BASE_DOMAIN, ROUTING_TOKEN, add_org
from tests.routing.schemas import validate_dynamic
from tests.support.api import add_user, assert_problem, direct_db, login
from tests.support.wait import eventually

WAKE_URL = "http://control-plane-wake.internal:8080"
HOST = f"sleepy.{BASE_DOMAIN}"


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    result: Settings = make_settings(
        ORGPLANE_BASE_DOMAIN=BASE_DOMAIN,
        ORGPLANE_ROUTING_TOKEN=ROUTING_TOKEN,
        ORGPLANE_ROUTING_FALLBACK_URL="http://control-plane.internal:8080",
        ORGPLANE_WAKE_URL=WAKE_URL,
        ORGPLANE_WAKE_HOLD_TIMEOUT="1.5",
    )
    return result


async def hibernated(client: AsyncTestClient[Any], slug: str = "sleepy") -> str:
    return await add_org(client, slug, phase="hibernated", hibernated_at=utcnow())


async def org_row(client: AsyncTestClient[Any], org_id: str) -> Org:
    async with direct_db(client) as db:
        org = await db.get(Org, org_id)
        assert org is not None
        return org


def test_the_builder_ranks_an_asleep_orgs_wake_router_high_and_a_woken_ones_low() -> None:
    routes = [
        Route(org_id="a" * 32, slug="acme", hostnames=("acme.example.net",), url="http://i:8000"),
        Route(org_id="b" * 32, slug="beta", hostnames=("beta.example.net", "b.example"), wake=True),
        Route(org_id="c" * 32, slug="nap", hostnames=("nap.example.net",), wake=True, asleep=True),
    ]
    config = dynamic_config(
        routes,
        entrypoints=["web"],
        tls=True,
        cert_resolver="le",
        fallback_url="http://cp:8080",
        wake_url="http://cp-wake:8080",
    )
    validate_dynamic(config)
    http = config["http"]
    router = http["routers"][router_name(slug="beta", org_id="b" * 32) + "-wake"]
    assert router["service"] == WAKE_SERVICE
    assert router["middlewares"] == [WAKE_MIDDLEWARE]
    assert http["middlewares"] == {WAKE_MIDDLEWARE: {"addPrefix": {"prefix": WAKE_PREFIX}}}
    assert http["services"][WAKE_SERVICE]["loadBalancer"]["servers"] == [
        {"url": "http://cp-wake:8080"}
    ]
    assert UNAVAILABLE_SERVICE not in http["services"]  # no org needs the unavailable page
    # Traefik's default priority is the rule's length: the org's own router (its container's
    # labels, once it runs again) always outranks a woken org's wake router; an asleep org's
    # wake router outranks the org's own router, which may still exist while it stops.
    labels = docker_labels(
        org_id="b" * 32,
        slug="beta",
        hostnames=["beta.example.net", "b.example"],
        port=8000,
        entrypoints=["web"],
        tls=False,
        cert_resolver="",
    )
    own_rule = next(v for k, v in labels.items() if k.endswith(".rule"))
    assert not any(k.endswith(".priority") for k in labels)
    assert router["priority"] < len(own_rule)
    assert router["priority"] < len(router["rule"])
    asleep = http["routers"][router_name(slug="nap", org_id="c" * 32) + "-wake"]
    assert asleep["service"] == WAKE_SERVICE
    assert asleep["priority"] == ASLEEP_PRIORITY > 10 * len(own_rule)
    assert ASLEEP_PRIORITY < 2**31 - 1000  # Traefik's own routers' range


async def test_the_configuration_routes_hibernated_and_waking_orgs_to_wake(
    client: AsyncTestClient[Any],
) -> None:
    sleepy = await hibernated(client)
    waking = await add_org(client, "waking", phase="starting", woken_at=utcnow())
    fresh = await add_org(client, "fresh", phase="starting")
    stopped = await add_org(
        client, "held", phase="stopped", desired_state="stopped", hibernated_at=utcnow()
    )
    answer = await client.get(
        "/api/v1/routing/traefik", headers={"Authorization": f"Bearer {ROUTING_TOKEN}"}
    )
    assert answer.status_code == 200, answer.text
    config = answer.json()
    validate_dynamic(config)
    routers = config["http"]["routers"]
    for org_id, slug in ((sleepy, "sleepy"), (waking, "waking")):
        router = routers[router_name(slug=slug, org_id=org_id) + "-wake"]
        assert router["service"] == WAKE_SERVICE
        assert re.findall(r"Host\(`([^`]+)`\)", router["rule"]) == [f"{slug}.{BASE_DOMAIN}"]
    # Asleep: above the org's own router; woken: below it.
    assert routers[router_name(slug="sleepy", org_id=sleepy) + "-wake"]["priority"] == (
        ASLEEP_PRIORITY
    )
    woken = routers[router_name(slug="waking", org_id=waking) + "-wake"]
    assert woken["priority"] < len(woken["rule"])
    for org_id, slug in ((fresh, "fresh"), (stopped, "held")):
        assert routers[router_name(slug=slug, org_id=org_id)]["service"] == UNAVAILABLE_SERVICE
    assert config["http"]["services"][WAKE_SERVICE]["loadBalancer"]["servers"] == [
        {"url": WAKE_URL}
    ]


async def test_hosts_that_are_not_asleep_are_refused(client: AsyncTestClient[Any]) -> None:
    await add_org(client, "awake", endpoint="http://10.1.0.7:8000")
    await add_org(client, "held", phase="stopped", desired_state="stopped", hibernated_at=utcnow())
    await add_org(client, "fresh", phase="starting")
    for host in (
        f"nobody.{BASE_DOMAIN}",
        f"awake.{BASE_DOMAIN}",  # running, never woken: not ours to answer
        f"held.{BASE_DOMAIN}",  # stopped by its admins: traffic does not start it
        f"fresh.{BASE_DOMAIN}",
        "unknown.example",
        "under_score.example",
    ):
        answer = await client.get(f"{WAKE_PREFIX}/", headers={"Host": host})
        assert_problem(answer, 404, "unknown_org")
    held = await client.get(f"{WAKE_PREFIX}/x", headers={"Host": f"held.{BASE_DOMAIN}"})
    assert "Held" not in held.text


async def test_a_browser_wakes_the_org_once_and_gets_a_page_that_reloads(
    client: AsyncTestClient[Any],
) -> None:
    org_id = await hibernated(client)
    before = (await org_row(client, org_id)).generation
    browser = {"Host": HOST, "Accept": "text/html,application/xhtml+xml;q=0.9"}
    for _ in range(2):
        page = await client.get(f"{WAKE_PREFIX}/dashboard?tab=1", headers=browser)
        assert page.status_code == 503
        assert page.headers["retry-after"] == "2"
        assert page.headers["content-type"].startswith("text/html")
        assert "Sleepy is starting" in page.text
        assert "http-equiv=refresh" in page.text
    org = await org_row(client, org_id)
    assert org.hibernated_at is None
    assert org.woken_at is not None
    assert org.generation == before + 1  # woken once, not once per request
    async with direct_db(client) as db:
        events = (await db.exec(select(InstanceEvent).where(InstanceEvent.org_id == org_id))).all()
        assert [e.kind for e in events] == ["instance.waking"]
        assert HOST in events[0].message
        audit = (await db.exec(select(AuditEvent).where(AuditEvent.org_id == org_id))).all()
        assert [a.action for a in audit if a.action.startswith("instance.")] == ["instance.wake"]


async def test_an_api_request_is_held_until_the_org_runs_then_redirected(
    client: AsyncTestClient[Any],
) -> None:
    org_id = await hibernated(client)

    woke: list[bool] = []

    async def reconciler_brings_it_up() -> None:
        async def woken() -> bool:
            return (await org_row(client, org_id)).hibernated_at is None

        await eventually(woken, what="the held request waking the org")
        async with direct_db(client) as db:
            org = await db.get(Org, org_id)
            assert org is not None
            woke.append(org.hibernated_at is None)  # the held request woke it
            org.phase = "running"
            db.add(org)
            await db.commit()

    # The test client serves a request on this thread, blocking this loop: the "reconciler"
    # runs on a thread and loop of its own.
    flip = threading.Thread(target=asyncio.run, args=(reconciler_brings_it_up(),))
    flip.start()
    held = await client.post(
        f"{WAKE_PREFIX}/api/v1/sessions?draft=1&x=%2F",
        headers={"Host": f"{HOST}:8443", "X-Forwarded-Proto": "https"},
        json={"title": "kept"},
        follow_redirects=False,
    )
    flip.join(timeout=10)
    assert woke == [True]
    assert held.status_code == 307, held.text
    assert held.headers["location"] == f"https://{HOST}:8443/api/v1/sessions?draft=1&x=%2F"

    # The proxy has not switched yet: a request reaching us for the running org is redirected
    # again (after a pause), not refused.
    again = await client.get(f"{WAKE_PREFIX}/", headers={"Host": HOST}, follow_redirects=False)
    assert again.status_code == 307
    assert again.headers["location"] == f"http://{HOST}/"


async def test_a_held_request_times_out_with_org_starting(client: AsyncTestClient[Any]) -> None:
    await hibernated(client)
    answer = await client.get(f"{WAKE_PREFIX}/api/v1/me", headers={"Host": HOST})
    assert_problem(answer, 503, "org_starting")
    assert int(answer.headers["retry-after"]) > 0


async def test_a_crafted_host_cannot_redirect_elsewhere(client: AsyncTestClient[Any]) -> None:
    org_id = await hibernated(client)
    async with direct_db(client) as db:
        org = await db.get(Org, org_id)
        assert org is not None
        org.phase, org.hibernated_at, org.woken_at = "running", None, utcnow()
        db.add(org)
        await db.commit()
    # A Host with userinfo is not a valid Host (RFC 9110 §7.2): refused before routing.
    answer = await client.get(
        f"{WAKE_PREFIX}//evil.example/x", headers={"Host": f"{HOST}:1@evil"}, follow_redirects=False
    )
    assert answer.status_code == 400
    assert answer.json()["code"] == "invalid_host"
    assert "location" not in answer.headers
    # A path that looks like another host stays a path on the org's own host.
    answer = await client.get(
        f"{WAKE_PREFIX}//evil.example/x", headers={"Host": HOST}, follow_redirects=False
    )
    assert answer.status_code == 307
    assert answer.headers["location"] == f"http://{HOST}//evil.example/x"


async def test_wake_and_hibernate_actions(client: AsyncTestClient[Any]) -> None:
    owner = await add_user(client, "owner@example.com")
    await add_user(client, "root@example.com", admin=True)
    org_id = await add_org(
        client, "sleepy", members={owner: "owner"}, phase="hibernated", hibernated_at=utcnow()
    )
    as_owner = await login(client, "owner@example.com")
    as_root = await login(client, "root@example.com")
    url = f"/api/v1/orgs/{org_id}/instance/actions"

    woken = await client.post(url, headers=as_owner, json={"action": "wake"})
    assert woken.status_code == 202, woken.text
    assert woken.json()["hibernated_at"] is None
    assert_problem(
        await client.post(url, headers=as_owner, json={"action": "wake"}), 409, "not_hibernated"
    )
    refused = await client.post(url, headers=as_owner, json={"action": "hibernate"})
    assert_problem(refused, 403, "platform_admin_required")
    assert_problem(
        await client.post(url, headers=as_root, json={"action": "hibernate"}),
        409,
        "instance_not_running",  # woken, not running yet
    )
    async with direct_db(client) as db:
        org = await db.get(Org, org_id)
        assert org is not None
        org.phase = "running"
        db.add(org)
        await db.commit()
    done = await client.post(url, headers=as_root, json={"action": "hibernate"})
    assert done.status_code == 202, done.text
    assert done.json()["hibernated_at"] is not None
    async with direct_db(client) as db:
        audit = (await db.exec(select(AuditEvent.action).where(AuditEvent.org_id == org_id))).all()
    assert "instance.wake" in audit
    assert "instance.hibernate" in audit
