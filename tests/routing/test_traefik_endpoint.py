"""The HTTP provider's configuration and the page of orgs that cannot be served."""

from __future__ import annotations

import re
from typing import Any

from litestar.testing import AsyncTestClient

from control_plane.db.models import Domain, Org, utcnow
from provisioners.traefik import UNAVAILABLE_MIDDLEWARE, UNAVAILABLE_SERVICE, router_name
from tests.routing.helpers import ROUTING_TOKEN, add_org
from tests.routing.schemas import validate_dynamic
from tests.support.api import assert_problem, direct_db

URL = "/api/v1/routing/traefik"
AUTH = {"Authorization": f"Bearer {ROUTING_TOKEN}"}


async def add_domain(
    client: AsyncTestClient[Any], org_id: str, hostname: str, *, verified: bool
) -> None:
    async with direct_db(client) as db:
        db.add(Domain(hostname=hostname, org_id=org_id, verified=verified, verification_token="t"))
        await db.commit()


async def configuration(client: AsyncTestClient[Any]) -> dict[str, Any]:
    answer = await client.get(URL, headers=AUTH)
    assert answer.status_code == 200, answer.text
    config: dict[str, Any] = answer.json()
    validate_dynamic(config)
    return config


def hosts_by_router(config: dict[str, Any]) -> dict[str, list[str]]:
    return {
        name: re.findall(r"Host\(`([^`]+)`\)", router["rule"])
        for name, router in config.get("http", {"routers": {}})["routers"].items()
    }


async def test_the_configuration_needs_the_routing_token(client: AsyncTestClient[Any]) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {ROUTING_TOKEN}"},
        {"Authorization": f"Bearer {ROUTING_TOKEN}x"},
    ):
        answer = await client.get(URL, headers=headers)
        body = assert_problem(answer, 401, "invalid_routing_token")
        assert ROUTING_TOKEN not in answer.text
        assert "routers" not in body


async def test_orgs_are_routed_by_state(client: AsyncTestClient[Any]) -> None:
    acme = await add_org(client, "acme", endpoint="http://10.1.0.7:8000")
    await add_domain(client, acme, "shop.acme.com", verified=True)
    await add_domain(client, acme, "pending.acme.com", verified=False)
    suspended = await add_org(
        client, "beta", endpoint="http://10.1.0.8:8000", suspended=True, desired_state="stopped"
    )
    stopped = await add_org(client, "gamma", phase="stopped", desired_state="stopped")
    await add_domain(client, stopped, "gamma.example", verified=True)
    starting = await add_org(client, "delta", phase="starting")
    gone = await add_org(
        client,
        "omega",
        endpoint="http://10.1.0.9:8000",
        desired_state="deleted",
        deleted_at=utcnow(),
    )
    await add_domain(client, gone, "omega.example", verified=True)

    config = await configuration(client)
    http = config["http"]
    name = {
        org_id: router_name(slug=slug, org_id=org_id)
        for org_id, slug in [
            (acme, "acme"),
            (suspended, "beta"),
            (stopped, "gamma"),
            (starting, "delta"),
        ]
    }
    assert hosts_by_router(config) == {
        name[acme]: ["acme.orgs.example.net", "shop.acme.com"],
        name[suspended]: ["beta.orgs.example.net"],
        name[stopped]: ["gamma.orgs.example.net", "gamma.example"],
        name[starting]: ["delta.orgs.example.net"],
    }
    router = http["routers"][name[acme]]
    assert router["entryPoints"] == ["web", "websecure"]
    assert "tls" not in router
    assert http["services"][router["service"]]["loadBalancer"]["servers"] == [
        {"url": "http://10.1.0.7:8000"}
    ]
    for org_id in (suspended, stopped, starting):
        assert http["routers"][name[org_id]]["service"] == UNAVAILABLE_SERVICE
        assert http["routers"][name[org_id]]["middlewares"] == [UNAVAILABLE_MIDDLEWARE]
    assert http["services"][UNAVAILABLE_SERVICE]["loadBalancer"]["servers"] == [
        {"url": "http://control-plane.internal:8080"}
    ]


async def test_routers_get_tls_when_it_is_on(make_settings: Any) -> None:
    from control_plane.app import create_app

    settings = make_settings(
        ORGPLANE_ROUTING_TOKEN=ROUTING_TOKEN,
        ORGPLANE_TLS="true",
        ORGPLANE_CERT_RESOLVER="letsencrypt",
        ORGPLANE_ENTRYPOINTS="websecure",
    )
    async with AsyncTestClient(create_app(settings), base_url="http://127.0.0.1:8080") as client:
        await add_org(client, "acme", endpoint="http://10.1.0.7:8000")
        await add_org(client, "beta", phase="stopped", desired_state="stopped")
        config = await configuration(client)
    routers = config["http"]["routers"].values()
    assert len(routers) == 2
    assert all(r["tls"] == {"certResolver": "letsencrypt"} for r in routers)
    assert all(r["entryPoints"] == ["websecure"] for r in routers)


async def test_the_unavailable_page_names_the_org_from_the_host(
    client: AsyncTestClient[Any],
) -> None:
    await add_org(client, "beta", suspended=True, desired_state="stopped", name="<b>Beta</b> & Co")
    stopped = await add_org(client, "gamma", phase="stopped", desired_state="stopped")
    await add_domain(client, stopped, "gamma.example", verified=True)
    await add_domain(client, stopped, "pending.example", verified=False)
    await add_org(client, "omega", phase="deleted", desired_state="deleted")

    page = await client.get("/org-unavailable", headers={"Host": "Beta.Orgs.Example.Net:443"})
    assert page.status_code == 503
    assert page.headers["content-type"].startswith("text/html")
    assert int(page.headers["retry-after"]) > 0
    assert "suspended" in page.text
    assert "&lt;b&gt;Beta&lt;/b&gt; &amp; Co" in page.text
    assert "<b>Beta" not in page.text

    custom = await client.get("/org-unavailable", headers={"Host": "gamma.example"})
    assert custom.status_code == 503
    assert "hibernating" in custom.text
    assert "Gamma" in custom.text

    for host in (
        "pending.example",
        "omega.orgs.example.net",
        "nobody.orgs.example.net",
        "unknown.example",
        "127.0.0.1:8080",
        "a.b.orgs.example.net",
    ):
        assert_problem(
            await client.get("/org-unavailable", headers={"Host": host}), 404, "unknown_host"
        )


async def test_the_unavailable_page_says_nothing_about_a_served_org(
    client: AsyncTestClient[Any],
) -> None:
    """Failed on the old code: asked directly with a running org's Host, the page answered 503
    with the org's name ("Secret Project is unavailable ... starting up"), so anyone could tell
    which hosts belong to an org and what it is called."""
    running = await add_org(client, "delta", endpoint="http://127.0.0.1:9", name="Secret Project")
    await add_domain(client, running, "delta.example", verified=True)
    for host in ("delta.orgs.example.net", "delta.example"):
        answer = await client.get("/org-unavailable", headers={"Host": host})
        body = assert_problem(answer, 404, "unknown_host")
        unknown = await client.get("/org-unavailable", headers={"Host": "nobody.example"})
        assert body["detail"] == unknown.json()["detail"]
        assert "Secret" not in answer.text


async def test_a_deleted_org_releases_its_hostnames(client: AsyncTestClient[Any]) -> None:
    from control_plane.routing.hostnames import release_domains

    gone = await add_org(client, "omega", endpoint="http://10.1.0.9:8000")
    await add_domain(client, gone, "omega.example", verified=True)
    async with direct_db(client) as db:
        org = await db.get(Org, gone)
        assert org is not None
        org.desired_state, org.deleted_at = "deleted", utcnow()
        db.add(org)
        await release_domains(db, org_id=gone)
        await db.commit()
    assert hosts_by_router(await configuration(client)) == {}
    heir = await add_org(client, "heir", endpoint="http://10.1.0.10:8000")
    await add_domain(client, heir, "omega.example", verified=True)
    assert hosts_by_router(await configuration(client)) == {
        router_name(slug="heir", org_id=heir): ["heir.orgs.example.net", "omega.example"]
    }
