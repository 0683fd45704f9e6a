"""Pending custom-domain claims never block another org: claims expire, several orgs may hold
one on a hostname, the first to prove it by DNS wins, and a verified owner is never displaced.

Against the real DNS server of ``tests/routing/conftest.py``, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient
from sqlmodel import col, select

from control_plane.db.models import AuditEvent, Domain, utcnow
from control_plane.routing.domains import drop_expired_claims
from control_plane.routing.verify import TxtResolver, reverify_due
from tests.routing.helpers import ZoneResolver, add_org
from tests.routing.test_domains_api import domains_url, owner_of_new_org
from tests.support.api import assert_problem, direct_db

HOST = "shop.example.com"
CHALLENGE = f"_orgplane-challenge.{HOST}"


async def claim(client: AsyncTestClient[Any], org_id: str, headers: dict[str, str]) -> Any:
    return await client.post(domains_url(org_id), headers=headers, json={"hostname": HOST})


async def listed(client: AsyncTestClient[Any], org_id: str, headers: dict[str, str]) -> list[str]:
    answer = await client.get(domains_url(org_id), headers=headers)
    return [d["hostname"] for d in answer.json()["items"] if d["kind"] == "custom"]


async def test_a_pending_claim_never_blocks_another_org_and_the_first_proof_wins(
    client: AsyncTestClient[Any], dns_zone: tuple[ZoneResolver, int]
) -> None:
    """Failed on the old code: the squatter's pending claim made the real owner's claim answer
    409 ``hostname_taken`` (one row per hostname, verified or not)."""
    zone, _ = dns_zone
    squatter_id, squatter = await owner_of_new_org(client, "squatter")
    owner_id, owner = await owner_of_new_org(client, "owner")
    squatted = await claim(client, squatter_id, squatter)
    assert squatted.status_code == 201, squatted.text
    mine = await claim(client, owner_id, owner)
    assert mine.status_code == 201, mine.text
    assert mine.json()["challenge"]["record_value"] != squatted.json()["challenge"]["record_value"]

    # The squatter cannot prove it: the record holds the owner's token only.
    zone.records[CHALLENGE] = [mine.json()["challenge"]["record_value"]]
    tried = await client.post(
        f"{domains_url(squatter_id)}/{squatted.json()['id']}/verify", headers=squatter
    )
    assert tried.json()["result"] == "record_mismatch"
    won = await client.post(f"{domains_url(owner_id)}/{mine.json()['id']}/verify", headers=owner)
    assert (won.json()["result"], won.json()["domain"]["verified"]) == ("verified", True)

    # The squatter's claim is gone, and a verified owner is never displaced.
    assert await listed(client, squatter_id, squatter) == []
    assert_problem(
        await client.post(
            f"{domains_url(squatter_id)}/{squatted.json()['id']}/verify", headers=squatter
        ),
        404,
        "domain_not_found",
    )
    assert_problem(await claim(client, squatter_id, squatter), 409, "hostname_taken")
    assert await listed(client, owner_id, owner) == [HOST]
    async with direct_db(client) as db:
        rows = (await db.exec(select(Domain).where(Domain.hostname == HOST))).all()
        dropped = (
            await db.exec(select(AuditEvent).where(AuditEvent.action == "domain.claim_dropped"))
        ).all()
    assert [(r.org_id, r.verified, r.claim_expires_at) for r in rows] == [(owner_id, True, None)]
    assert [(e.org_id, e.target_id) for e in dropped] == [(squatter_id, squatted.json()["id"])]


async def test_a_claim_on_a_hostname_another_org_proved_meanwhile_is_dropped_at_verify(
    client: AsyncTestClient[Any], dns_zone: tuple[ZoneResolver, int]
) -> None:
    """Made after the owner's win (the owner's sweep could not see it), the late claim loses at
    its own verification even with a matching record: 409 ``hostname_taken``, claim deleted."""
    zone, _ = dns_zone
    owner_id, owner = await owner_of_new_org(client, "owner")
    late_id, late = await owner_of_new_org(client, "late")
    mine = (await claim(client, owner_id, owner)).json()
    theirs = (await claim(client, late_id, late)).json()
    async with direct_db(client) as db:  # the owner verified between the late claim's checks
        row = await db.get(Domain, mine["id"])
        assert row is not None
        row.verified, row.claim_expires_at = True, None
        db.add(row)
        await db.commit()
    zone.records[CHALLENGE] = [theirs["challenge"]["record_value"]]
    refused = await client.post(f"{domains_url(late_id)}/{theirs['id']}/verify", headers=late)
    assert_problem(refused, 409, "hostname_taken")
    assert await listed(client, late_id, late) == []
    assert await listed(client, owner_id, owner) == [HOST]


@pytest.fixture
def extra_settings() -> dict[str, str]:
    """Claims that live two hours."""
    return {"ORGPLANE_DOMAIN_CLAIM_TTL_HOURS": "2"}


async def test_claims_expire_after_the_configured_time_and_are_then_ignored_and_removed(
    client: AsyncTestClient[Any], dns_zone: tuple[ZoneResolver, int]
) -> None:
    """``ORGPLANE_DOMAIN_CLAIM_TTL_HOURS`` (2 here) sets when a claim expires; an expired claim
    is not listed, not verifiable (even with its record in place), no obstacle to a fresh
    claim, and housekeeping deletes it (audited)."""
    zone, _ = dns_zone
    org_id, owner = await owner_of_new_org(client, "acme")
    before = utcnow()
    first = (await claim(client, org_id, owner)).json()
    async with direct_db(client) as db:
        row = await db.get(Domain, first["id"])
        assert row is not None
        assert row.claim_expires_at is not None
        assert before + timedelta(hours=2) <= row.claim_expires_at <= utcnow() + timedelta(hours=2)
        assert await drop_expired_claims(db) == 0  # not expired yet
        row.claim_expires_at = utcnow() - timedelta(seconds=1)
        db.add(row)
        await db.commit()

    assert await listed(client, org_id, owner) == []
    zone.records[CHALLENGE] = [first["challenge"]["record_value"]]
    assert_problem(
        await client.post(f"{domains_url(org_id)}/{first['id']}/verify", headers=owner),
        404,
        "domain_not_found",
    )
    again = await claim(client, org_id, owner)
    assert again.status_code == 201, again.text
    assert again.json()["id"] != first["id"]
    assert await listed(client, org_id, owner) == [HOST]

    async with direct_db(client) as db:
        later = utcnow() + timedelta(hours=3)
        assert await drop_expired_claims(db, now=later) == 1
        assert (await db.exec(select(Domain).where(Domain.hostname == HOST))).all() == []
        events = (
            await db.exec(select(AuditEvent).where(AuditEvent.action == "domain.claim_expired"))
        ).all()
    assert [e.target_id for e in events] == [again.json()["id"]]


async def test_concurrent_verifications_of_one_hostname_have_one_winner(
    client: AsyncTestClient[Any], admin: dict[str, str], dns_zone: tuple[ZoneResolver, int]
) -> None:
    """Twelve orgs claim one hostname and its record holds every one of their tokens; their
    verifications, sent at once, verify exactly one (the unique index on verified hostnames and
    the locked rows settle it) and drop the other eleven claims: 409 ``hostname_taken``."""
    zone, _ = dns_zone
    org_ids = [await add_org(client, f"org{i}") for i in range(12)]
    claims = [(await claim(client, org_id, admin)).json() for org_id in org_ids]
    zone.records[CHALLENGE] = [c["challenge"]["record_value"] for c in claims]

    async def race() -> list[Any]:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url=str(client.base_url)) as http:
            return list(
                await asyncio.gather(
                    *(
                        http.post(f"{domains_url(o)}/{c['id']}/verify", headers=admin)
                        for o, c in zip(org_ids, claims, strict=True)
                    )
                )
            )

    answers = client.blocking_portal.call(race)
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] + [409] * 11, [a.text for a in answers]
    for answer in answers:
        if answer.status_code == 409:
            assert_problem(answer, 409, "hostname_taken")
    winner = next(a for a in answers if a.status_code == 200).json()["domain"]
    async with direct_db(client) as db:
        rows = (await db.exec(select(Domain).where(Domain.hostname == HOST))).all()
    assert [(r.id, r.verified) for r in rows] == [(winner["id"], True)]


async def test_the_periodic_recheck_drops_a_late_claim_and_carries_on(
    client: AsyncTestClient[Any], dns_zone: tuple[ZoneResolver, int]
) -> None:
    """A claim on a hostname another org verified meanwhile, its record in place, and another
    domain checked after it: the recheck drops the claim (``domain.claim_dropped``) and goes on
    to verify the other domain. Failed on this branch's first version: the drop rolled the
    session back and the next row of the batch, expired by it, raised MissingGreenlet; the
    batch now reloads each row."""
    zone, port = dns_zone
    first_id, first = await owner_of_new_org(client, "first")
    second_id, second = await owner_of_new_org(client, "second")
    a = (await claim(client, first_id, first)).json()
    b = (await claim(client, second_id, second)).json()
    other = await client.post(
        domains_url(second_id), headers=second, json={"hostname": "other.example.com"}
    )
    c = other.json()
    zone.records[CHALLENGE] = [b["challenge"]["record_value"]]
    zone.records["_orgplane-challenge.other.example.com"] = [c["challenge"]["record_value"]]
    async with direct_db(client) as db:
        won = await db.get(Domain, a["id"])
        assert won is not None
        won.verified, won.claim_expires_at, won.last_checked_at = True, None, utcnow()
        db.add(won)
        for n, domain_id in enumerate((b["id"], c["id"])):
            row = await db.get(Domain, domain_id)
            assert row is not None
            row.last_checked_at = utcnow() - timedelta(days=3 - n)  # checked in this order
            db.add(row)
        await db.commit()
        resolver = TxtResolver(address=f"127.0.0.1:{port}")
        assert await reverify_due(db, resolver=resolver) == 1
        rows = (await db.exec(select(Domain).where(col(Domain.kind) == "custom"))).all()
        dropped = (
            await db.exec(select(AuditEvent).where(AuditEvent.action == "domain.claim_dropped"))
        ).all()
    assert sorted((r.id, r.verified) for r in rows) == sorted([(a["id"], True), (c["id"], True)])
    assert [e.target_id for e in dropped] == [b["id"]]
