"""Routing test helpers: a DNS zone the tests edit, and orgs put straight in the database."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from dnslib import QTYPE, RCODE, RR, TXT, DNSRecord
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import StaticPool
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.db.models import Instance, Membership, Org
from control_plane.routing.hostnames import claim_subdomain
from tests.support.api import direct_db

BASE_DOMAIN = "orgs.example.net"
ROUTING_TOKEN = "routing-token-for-tests-only"


class ZoneResolver:
    """Answers TXT queries from ``records`` (name -> values); the test edits it while it runs.

    A name in ``failing`` answers SERVFAIL, as a broken upstream would.
    """

    def __init__(self) -> None:
        self.records: dict[str, list[str]] = {}
        self.failing: set[str] = set()
        self.queries: list[str] = []
        self._lock = threading.Lock()

    def resolve(self, request: DNSRecord, handler: Any) -> DNSRecord:
        reply = request.reply()
        name = str(request.q.qname).rstrip(".").lower()
        with self._lock:
            self.queries.append(name)
            values = list(self.records.get(name, []))
            failing = name in self.failing
        if failing:
            reply.header.rcode = RCODE.SERVFAIL
        elif not values:
            reply.header.rcode = RCODE.NXDOMAIN
        elif request.q.qtype == QTYPE.TXT:
            for value in values:
                reply.add_answer(RR(request.q.qname, QTYPE.TXT, rdata=TXT(value), ttl=1))
        return reply


async def add_org(
    client: AsyncTestClient[Any],
    slug: str,
    *,
    members: dict[str, str] | None = None,
    phase: str = "running",
    endpoint: str = "",
    **fields: Any,
) -> str:
    """An org straight in the database, its subdomain claimed; ``members``: user id -> role.

    On the ``team`` plan unless ``fields`` say otherwise: adding custom domains needs the
    ``custom_domains`` feature, which ``free`` lacks."""
    async with direct_db(client) as db:
        org = Org(slug=slug, phase=phase, **{"name": slug.title(), "plan": "team", **fields})
        db.add(org)
        await db.flush()
        await claim_subdomain(db, org=org, base_domain=BASE_DOMAIN)
        for user_id, role in (members or {}).items():
            db.add(Membership(user_id=user_id, org_id=org.id, role=role))
        if endpoint:
            db.add(Instance(org_id=org.id, provisioner="local", endpoint=endpoint, phase=phase))
        await db.commit()
        return org.id


@asynccontextmanager
async def memory_db() -> AsyncIterator[AsyncSession]:
    """A session on a fresh in-memory SQLite database with every table (no app, no services)."""
    engine = create_async_engine("sqlite+aiosqlite://", poolclass=StaticPool)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(SQLModel.metadata.create_all)
        async with AsyncSession(engine, expire_on_commit=False) as session:
            yield session
    finally:
        await engine.dispose()
