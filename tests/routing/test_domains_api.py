"""Custom-domain API: who may add what, one owner per hostname in every spelling, removal."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient
from sqlmodel import select

from control_plane.db.models import AuditEvent, Domain
from tests.routing.helpers import add_org
from tests.support.api import add_user, assert_problem, direct_db, login


def domains_url(org_id: str) -> str:
    return f"/api/v1/orgs/{org_id}/domains"


async def owner_of_new_org(client: AsyncTestClient[Any], slug: str) -> tuple[str, dict[str, str]]:
    """A new org and the Authorization headers of its owner."""
    user_id = await add_user(client, f"owner@{slug}.test")
    org_id = await add_org(client, slug, members={user_id: "owner"})
    return org_id, await login(client, f"owner@{slug}.test")


async def test_admin_adds_a_domain_and_gets_its_challenge(client: AsyncTestClient[Any]) -> None:
    org_id, owner = await owner_of_new_org(client, "acme")
    added = await client.post(
        domains_url(org_id), headers=owner, json={"hostname": " Shop.Example.COM. "}
    )
    assert added.status_code == 201, added.text
    body = added.json()
    assert body["hostname"] == "shop.example.com"
    assert body["kind"] == "custom"
    assert body["verified"] is False
    challenge = body["challenge"]
    assert challenge["record_type"] == "TXT"
    assert challenge["record_name"] == "_orgplane-challenge.shop.example.com"
    assert challenge["record_value"].startswith("orgplane-verification=")
    listed = await client.get(domains_url(org_id), headers=owner)
    assert listed.status_code == 200
    items = listed.json()["items"]
    assert [(d["hostname"], d["kind"]) for d in items] == [
        ("acme.orgs.example.net", "subdomain"),
        ("shop.example.com", "custom"),
    ]
    assert items[0]["challenge"] is None
    assert items[0]["verified"] is True
    async with direct_db(client) as db:
        query = select(AuditEvent).where(AuditEvent.action == "domain.added")
        (event,) = (await db.exec(query)).all()
    assert (event.org_id, event.target_id) == (org_id, body["id"])
    assert event.detail["hostname"] == "shop.example.com"


async def mark_verified(client: AsyncTestClient[Any], domain_id: str) -> None:
    """Verify a domain straight in the database (``test_verification.py`` does it by DNS)."""
    async with direct_db(client) as db:
        row = await db.get(Domain, domain_id)
        assert row is not None
        row.verified, row.claim_expires_at = True, None
        db.add(row)
        await db.commit()


async def test_every_spelling_of_a_hostname_is_one_host(client: AsyncTestClient[Any]) -> None:
    first_id, first = await owner_of_new_org(client, "first")
    second_id, second = await owner_of_new_org(client, "second")
    added = await client.post(
        domains_url(first_id), headers=first, json={"hostname": "bücher.example"}
    )
    assert added.json()["hostname"] == "xn--bcher-kva.example"
    assert added.json()["display_hostname"] == "bücher.example"
    await mark_verified(client, added.json()["id"])  # a pending claim would not stand in the way
    for spelling in (
        "BÜCHER.example.",
        "xn--bcher-kva.example",
        "XN--BCHER-KVA.EXAMPLE",
        "ｂüｃｈｅｒ.example",
    ):
        clash = await client.post(
            domains_url(second_id), headers=second, json={"hostname": spelling}
        )
        assert_problem(clash, 409, "hostname_taken")
    again = await client.post(
        domains_url(first_id), headers=first, json={"hostname": "Bücher.Example"}
    )
    assert_problem(again, 409, "domain_exists")
    async with direct_db(client) as db:
        rows = (await db.exec(select(Domain).where(Domain.kind == "custom"))).all()
    assert [row.hostname for row in rows] == ["xn--bcher-kva.example"]


async def test_names_under_the_base_domain_are_never_custom_domains(
    client: AsyncTestClient[Any],
) -> None:
    await add_org(client, "acme")
    beta_id, beta = await owner_of_new_org(client, "beta")
    cases = [
        ("acme.orgs.example.net", 409, "hostname_taken"),  # another org's subdomain
        ("WWW.Acme.orgs.example.net.", 409, "hostname_taken"),  # under it
        ("beta.orgs.example.net", 409, "domain_exists"),  # its own subdomain
        ("app.beta.orgs.example.net", 400, "hostname_reserved"),
        ("newco.orgs.example.net", 400, "hostname_reserved"),  # a future org's subdomain
        ("Orgs.Example.Net.", 400, "hostname_reserved"),  # the base domain itself
        ("control-plane.INTERNAL", 400, "hostname_reserved"),  # the control plane's host
    ]
    for hostname, status, code in cases:
        answer = await client.post(domains_url(beta_id), headers=beta, json={"hostname": hostname})
        assert_problem(answer, status, code)
    parent = await client.post(domains_url(beta_id), headers=beta, json={"hostname": "example.net"})
    assert parent.status_code == 201, parent.text


@pytest.mark.parametrize(
    "hostname",
    [
        "exa mple.com",
        "*.example.com",
        "localhost",
        "192.0.2.7",
        "a..example",
        "ex_ample.com",
        "-edge.example",
        "xn--zz.example",
        "a" * 64 + ".example",
        ("a" * 62 + ".") * 4 + "com",
    ],
)
async def test_malformed_hostnames_are_refused(client: AsyncTestClient[Any], hostname: str) -> None:
    org_id, owner = await owner_of_new_org(client, "acme")
    answer = await client.post(domains_url(org_id), headers=owner, json={"hostname": hostname})
    assert_problem(answer, 400, "invalid_hostname")


async def test_bodies_are_strict(client: AsyncTestClient[Any]) -> None:
    org_id, owner = await owner_of_new_org(client, "acme")
    unknown = await client.post(
        domains_url(org_id), headers=owner, json={"hostname": "a.example", "verified": True}
    )
    assert_problem(unknown, 400, "validation_error")
    empty = await client.post(domains_url(org_id), headers=owner, json={"hostname": ""})
    assert_problem(empty, 400, "validation_error")


async def test_members_read_admins_write_outsiders_see_nothing(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    member_id = await add_user(client, "member@acme.test")
    admin_id = await add_user(client, "admin@acme.test")
    await add_user(client, "stranger@else.test")
    org_id = await add_org(client, "acme", members={member_id: "member", admin_id: "admin"})
    member, org_admin = (
        await login(client, "member@acme.test"),
        await login(client, "admin@acme.test"),
    )
    stranger = await login(client, "stranger@else.test")
    body = {"hostname": "acme.example"}
    assert (await client.get(domains_url(org_id), headers=member)).status_code == 200
    assert_problem(
        await client.post(domains_url(org_id), headers=member, json=body), 403, "admin_required"
    )
    assert_problem(await client.get(domains_url(org_id), headers=stranger), 404, "org_not_found")
    assert_problem(
        await client.post(domains_url(org_id), headers=stranger, json=body), 404, "org_not_found"
    )
    assert_problem(await client.get(domains_url("f" * 32), headers=admin), 404, "org_not_found")
    assert_problem(await client.get(domains_url(org_id)), 401)
    added = await client.post(domains_url(org_id), headers=org_admin, json=body)
    assert added.status_code == 201
    by_staff = await client.post(domains_url(org_id), headers=admin, json={"hostname": "b.example"})
    assert by_staff.status_code == 201


async def test_removed_domains_can_be_claimed_again(client: AsyncTestClient[Any]) -> None:
    first_id, first = await owner_of_new_org(client, "first")
    second_id, second = await owner_of_new_org(client, "second")
    domain = (
        await client.post(domains_url(first_id), headers=first, json={"hostname": "x.example"})
    ).json()
    listed = (await client.get(domains_url(first_id), headers=first)).json()["items"]
    subdomain_id = next(d["id"] for d in listed if d["kind"] == "subdomain")
    assert_problem(
        await client.delete(f"{domains_url(first_id)}/{subdomain_id}", headers=first),
        400,
        "subdomain_not_removable",
    )
    # Another org's path never reaches this org's domain.
    assert_problem(
        await client.delete(f"{domains_url(second_id)}/{domain['id']}", headers=second), 404
    )
    removed = await client.delete(f"{domains_url(first_id)}/{domain['id']}", headers=first)
    assert removed.status_code == 204
    assert_problem(
        await client.delete(f"{domains_url(first_id)}/{domain['id']}", headers=first),
        404,
        "domain_not_found",
    )
    claimed = await client.post(
        domains_url(second_id), headers=second, json={"hostname": "X.example"}
    )
    assert claimed.status_code == 201
    async with direct_db(client) as db:
        query = select(AuditEvent).where(AuditEvent.action == "domain.removed")
        (event,) = (await db.exec(query)).all()
    assert event.target_id == domain["id"]
    assert event.detail["hostname"] == "x.example"


async def test_concurrent_claims_of_one_hostname_by_one_org_make_one_claim(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    """Twenty claims of one hostname (in several spellings) by one org, sent at once: the
    (org, hostname) unique constraint lets one insert commit; the others answer 409
    ``domain_exists``. (Claims by several orgs all stand until one is verified:
    ``test_domain_claims.py``.)"""
    org_id = await add_org(client, "org0")
    spellings = ["contested.example.com", "CONTESTED.example.com.", "Contested.Example.Com"]

    async def race() -> list[Any]:
        # The test client sends one request at a time; an ASGI client in the app's own loop
        # sends all twenty at once, so several pass the checks before the first one commits.
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url=str(client.base_url)) as http:
            return list(
                await asyncio.gather(
                    *(
                        http.post(
                            domains_url(org_id),
                            headers=admin,
                            json={"hostname": spellings[i % len(spellings)]},
                        )
                        for i in range(20)
                    )
                )
            )

    answers = client.blocking_portal.call(race)
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] + [409] * 19, [
        a.text for a in answers if a.status_code not in (201, 409)
    ]
    for answer in answers:
        if answer.status_code == 409:
            assert_problem(answer, 409, "domain_exists")
    winner = next(a for a in answers if a.status_code == 201).json()
    async with direct_db(client) as db:
        query = select(Domain).where(Domain.hostname == "contested.example.com")
        rows = (await db.exec(query)).all()
        added = (await db.exec(select(AuditEvent).where(AuditEvent.action == "domain.added"))).all()
    assert [row.id for row in rows] == [winner["id"]]
    assert [event.target_id for event in added] == [winner["id"]]
