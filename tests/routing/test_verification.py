"""Domain verification by DNS TXT, against a real DNS server the test runs on 127.0.0.1."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlmodel import select

from control_plane.db.models import AuditEvent, Domain, Org, utcnow
from control_plane.routing.verify import (
    CheckResult,
    TxtResolver,
    check_domain,
    parse_resolver_address,
    reverify_due,
)
from tests.routing.helpers import ZoneResolver, add_org
from tests.support.api import add_user, direct_db, login

CHALLENGE = "_orgplane-challenge.shop.example.com"


async def pending_domain(
    client: AsyncTestClient[Any],
) -> tuple[str, dict[str, Any], dict[str, str]]:
    """An org with a pending custom domain: (org id, the domain, the owner's headers)."""
    user_id = await add_user(client, "owner@acme.test")
    org_id = await add_org(client, "acme", members={user_id: "owner"})
    owner = await login(client, "owner@acme.test")
    added = await client.post(
        f"/api/v1/orgs/{org_id}/domains", headers=owner, json={"hostname": "shop.example.com"}
    )
    assert added.status_code == 201, added.text
    return org_id, added.json(), owner


async def verify(
    client: AsyncTestClient[Any], org_id: str, domain_id: str, owner: dict[str, str]
) -> Any:
    answer = await client.post(f"/api/v1/orgs/{org_id}/domains/{domain_id}/verify", headers=owner)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def actions(client: AsyncTestClient[Any]) -> list[tuple[str, str]]:
    async with direct_db(client) as db:
        query = select(AuditEvent).where(AuditEvent.target_type == "domain").order_by(AuditEvent.id)
        return [(e.action, e.outcome) for e in (await db.exec(query)).all()]


async def test_a_domain_is_verified_only_by_its_own_txt_record(
    client: AsyncTestClient[Any], dns_zone: tuple[ZoneResolver, int]
) -> None:
    zone, _ = dns_zone
    org_id, domain, owner = await pending_domain(client)
    missing = await verify(client, org_id, domain["id"], owner)
    assert (missing["result"], missing["domain"]["verified"]) == ("record_missing", False)
    assert CHALLENGE in zone.queries

    zone.records[CHALLENGE] = ["orgplane-verification=someone-elses-token"]
    mismatch = await verify(client, org_id, domain["id"], owner)
    assert (mismatch["result"], mismatch["domain"]["verified"]) == ("record_mismatch", False)

    zone.records[CHALLENGE] = ["v=spf1 -all", domain["challenge"]["record_value"]]
    verified = await verify(client, org_id, domain["id"], owner)
    assert (verified["result"], verified["domain"]["verified"]) == ("verified", True)
    assert verified["domain"]["verified_at"] is not None
    async with direct_db(client) as db:
        org = await db.get(Org, org_id)
    assert org is not None
    assert org.generation == 2
    assert await actions(client) == [
        ("domain.subdomain_claimed", "success"),
        ("domain.added", "success"),
        ("domain.verify", "failure"),
        ("domain.verify", "failure"),
        ("domain.verified", "success"),
    ]


async def test_a_dns_failure_is_reported_and_changes_nothing(
    client: AsyncTestClient[Any], dns_zone: tuple[ZoneResolver, int]
) -> None:
    zone, _ = dns_zone
    org_id, domain, owner = await pending_domain(client)
    zone.failing.add(CHALLENGE)
    answer = await verify(client, org_id, domain["id"], owner)
    assert (answer["result"], answer["domain"]["verified"]) == ("lookup_failed", False)


async def test_periodic_recheck_unroutes_a_domain_whose_record_went_away(
    client: AsyncTestClient[Any], dns_zone: tuple[ZoneResolver, int]
) -> None:
    zone, port = dns_zone
    org_id, domain, owner = await pending_domain(client)
    zone.records[CHALLENGE] = [domain["challenge"]["record_value"]]
    await verify(client, org_id, domain["id"], owner)
    resolver = TxtResolver(address=f"127.0.0.1:{port}")

    async with direct_db(client) as db:
        assert await reverify_due(db, resolver=resolver, every=timedelta(hours=1)) == 0  # not due
        later = utcnow() + timedelta(hours=2)
        zone.failing.add(CHALLENGE)  # DNS down: the domain stays routed
        assert await reverify_due(db, resolver=resolver, every=timedelta(hours=1), now=later) == 1
        row = await db.get(Domain, domain["id"])
        assert row is not None
        assert row.verified is True

        zone.failing.clear()
        del zone.records[CHALLENGE]
        much_later = later + timedelta(hours=2)
        assert (
            await reverify_due(db, resolver=resolver, every=timedelta(hours=1), now=much_later) == 1
        )
        await db.refresh(row)
        assert row.verified is False
        assert row.verified_at is None
    assert await actions(client) == [
        ("domain.subdomain_claimed", "success"),
        ("domain.added", "success"),
        ("domain.verified", "success"),
        ("domain.verification_lost", "success"),
    ]


async def test_periodic_recheck_verifies_a_pending_domain_once_its_record_appears(
    client: AsyncTestClient[Any], dns_zone: tuple[ZoneResolver, int]
) -> None:
    zone, port = dns_zone
    _, domain, _ = await pending_domain(client)
    zone.records[CHALLENGE] = [domain["challenge"]["record_value"]]
    async with direct_db(client) as db:
        checked = await reverify_due(db, resolver=TxtResolver(address=f"127.0.0.1:{port}"))
        row = (await db.exec(select(Domain).where(Domain.id == domain["id"]))).one()
    assert checked == 1
    assert row.verified is True


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("192.0.2.1", ("192.0.2.1", 53)),
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        ("[::1]:5353", ("::1", 5353)),
        ("::1", ("::1", 53)),
    ],
)
def test_resolver_addresses_parse(text: str, parsed: tuple[str, int]) -> None:
    assert parse_resolver_address(text) == parsed


def test_resolver_address_must_be_an_ip() -> None:
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 address"):
        parse_resolver_address("dns.example:53")


async def test_a_misconfigured_resolver_is_a_failed_lookup_not_a_crash() -> None:
    domain = Domain(hostname="shop.example.com", org_id="o" * 32, verification_token="t")
    result = await check_domain(domain, resolver=TxtResolver(address="dns.example:53"))
    assert result is CheckResult.LOOKUP_FAILED
