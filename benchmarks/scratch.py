"""A scratch PostgreSQL database for a benchmark, bulk seeding of many orgs into it, and the
settings of a control plane on it.

The database is cloned from the migrated template the tests use (``tests/support/db.py``) and
dropped afterwards, whatever happens (the runner turns SIGTERM into an exit, so ``finally``
runs). Seeding goes through the models in batches (one multi-row INSERT per batch), so 10,000
orgs take seconds.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from control_plane.db.engine import make_engine, make_sessionmaker
from control_plane.db.models import Instance, Membership, Org, utcnow
from control_plane.settings import Settings
from orgplane_wire.secret_box import hash_secret
from tests.support.services import POSTGRES_DSN, REDIS_URL, postgres_available, redis_available

BATCH = 1000


def missing_services(*, redis: bool = False) -> str:
    """Why a benchmark cannot run here ("" when PostgreSQL, and Redis if asked, answer)."""
    missing = [
        name
        for name, up in (
            (f"PostgreSQL at {POSTGRES_DSN}", postgres_available()),
            (f"Redis at {REDIS_URL}", not redis or redis_available()),
        )
        if not up
    ]
    return f"{' and '.join(missing)} not reachable" if missing else ""


@asynccontextmanager
async def engine_on(url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on ``url``, disposed on the way out."""
    engine = make_engine(url)
    try:
        yield engine
    finally:
        await engine.dispose()


async def _create() -> tuple[str, str]:
    from tests.support.db import create_postgres_database, create_template

    await create_template()
    return await create_postgres_database()


@asynccontextmanager
async def scratch_postgres() -> AsyncIterator[str]:
    """A new migrated database (its SQLAlchemy URL), dropped on the way out."""
    from tests.support.db import drop_postgres_database

    name, url = await _create()
    try:
        yield url
    finally:
        await drop_postgres_database(name)


@contextmanager
def scratch_postgres_sync() -> Iterator[str]:
    """:func:`scratch_postgres` for code outside an event loop (each step its own loop)."""
    from tests.support.db import drop_postgres_database

    name, url = asyncio.run(_create())
    try:
        yield url
    finally:
        asyncio.run(drop_postgres_database(name))


@contextmanager
def production_settings(url: str, **extra: str) -> Iterator[Settings]:
    """Settings of a production-mode control plane on ``url`` with the reconciler off, built
    from a clean ``ORGPLANE_*`` environment (plus ``extra`` variables) that is put back
    afterwards."""
    saved = dict(os.environ)
    for key in [k for k in os.environ if k.startswith("ORGPLANE_")]:
        del os.environ[key]
    os.environ.update(
        ORGPLANE_MODE="production",
        ORGPLANE_DATABASE_URL=url,
        ORGPLANE_SECRET_KEY="benchmark-deployment-secret-0123456789",
        ORGPLANE_RECONCILER_ENABLED="false",
        ORGPLANE_LOG_LEVEL="WARNING",
        **extra,
    )
    try:
        yield Settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)


@dataclass
class Seeded:
    """What :func:`seed_orgs` wrote: org ids and slugs in slug order, instance credentials."""

    org_ids: list[str] = field(default_factory=list)
    slugs: list[str] = field(default_factory=list)
    credentials: dict[str, str] = field(default_factory=dict)


def bench_credential(org_id: str) -> str:
    """A well-formed instance credential for ``org_id`` (deterministic: a benchmark secret)."""
    return f"opi_{org_id}.benchmark-instance-{org_id[:12]}"


async def seed_orgs(
    url: str,
    *,
    count: int,
    member_user_id: str | None = None,
    member_every: int = 1,
    instances: bool = False,
    usage_reported: Mapping[str, object] | None = None,
) -> Seeded:
    """``count`` running root orgs ``org-00000``..., with Instance rows and credentials when
    ``instances`` (their ``usage_reported`` set to ``usage_reported``, as if the control plane
    had heard them before), and ``member_user_id`` a member of every ``member_every``-th org."""
    seeded = Seeded()
    words = ("acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "tyrell")
    async with engine_on(url) as engine:
        sessions = make_sessionmaker(engine)
        for start in range(0, count, BATCH):
            async with sessions() as db:
                orgs = [
                    Org(
                        slug=f"org-{i:05d}",
                        name=f"{words[i % len(words)].title()} Team {i}",
                        phase="running",
                    )
                    for i in range(start, min(count, start + BATCH))
                ]
                db.add_all(orgs)
                await db.flush()
                for n, org in enumerate(orgs, start):
                    seeded.org_ids.append(org.id)
                    seeded.slugs.append(org.slug)
                    if member_user_id and n % member_every == 0:
                        db.add(Membership(user_id=member_user_id, org_id=org.id, role="member"))
                    if instances:
                        credential = bench_credential(org.id)
                        seeded.credentials[org.id] = credential
                        db.add(
                            Instance(
                                org_id=org.id,
                                provisioner="local",
                                phase="running",
                                health="ok",
                                observed_generation=org.generation,
                                credential_hash=hash_secret(credential),
                                last_heartbeat_at=utcnow(),
                                usage_reported=dict(usage_reported or {}),
                            )
                        )
                await db.commit()
    return seeded
