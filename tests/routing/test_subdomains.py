"""``claim_subdomain``: every org owns ``{slug}.{base_domain}``, once, and only while it lives."""

from __future__ import annotations

import pytest
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.db.models import AuditEvent, Domain, Org, utcnow
from control_plane.routing.hostnames import claim_subdomain, release_domains
from orgplane_wire.problems import Conflict
from tests.routing.helpers import memory_db


async def subdomains(db: AsyncSession) -> list[tuple[str, str]]:
    rows = (await db.exec(select(Domain).order_by(Domain.hostname))).all()
    return [(row.hostname, row.kind) for row in rows]


async def test_claiming_is_idempotent_audited_and_follows_the_base_domain() -> None:
    async with memory_db() as db:
        org = Org(slug="acme", name="Acme")
        db.add(org)
        await claim_subdomain(db, org=org, base_domain="Orgs.Example.NET.")
        await db.commit()
        await claim_subdomain(db, org=org, base_domain="orgs.example.net")
        await db.commit()
        assert await subdomains(db) == [("acme.orgs.example.net", "subdomain")]
        (row,) = (await db.exec(select(Domain))).all()
        assert row.verified is True

        await claim_subdomain(db, org=org, base_domain="cloud.example.org")  # base domain moved
        await db.commit()
        assert await subdomains(db) == [("acme.cloud.example.org", "subdomain")]
        events = (await db.exec(select(AuditEvent).order_by(AuditEvent.id))).all()
        assert [(e.action, e.detail["hostname"]) for e in events] == [
            ("domain.subdomain_claimed", "acme.orgs.example.net"),
            ("domain.subdomain_claimed", "acme.cloud.example.org"),
        ]


async def test_a_live_owner_keeps_its_name_and_a_deleted_one_gives_it_up() -> None:
    async with memory_db() as db:
        # A custom domain added before the base domain moved onto it.
        old = Org(slug="old", name="Old")
        db.add(old)
        db.add(Domain(hostname="acme.orgs.example.net", org_id=old.id, verified=True))
        await db.commit()
        acme = Org(slug="acme", name="Acme")
        db.add(acme)
        with pytest.raises(Conflict) as refused:
            await claim_subdomain(db, org=acme, base_domain="orgs.example.net")
        assert refused.value.code == "hostname_taken"

        old.desired_state, old.deleted_at = "deleted", utcnow()
        db.add(old)
        await claim_subdomain(db, org=acme, base_domain="orgs.example.net")
        await db.commit()
        (row,) = (await db.exec(select(Domain))).all()
        assert (row.hostname, row.org_id, row.kind) == (
            "acme.orgs.example.net",
            acme.id,
            "subdomain",
        )


async def test_release_frees_every_hostname_of_an_org() -> None:
    async with memory_db() as db:
        org = Org(slug="acme", name="Acme")
        db.add(org)
        await claim_subdomain(db, org=org, base_domain="orgs.example.net")
        db.add(Domain(hostname="shop.example", org_id=org.id, verified=True))
        await db.commit()
        await release_domains(db, org_id=org.id)
        await db.commit()
        assert await subdomains(db) == []
