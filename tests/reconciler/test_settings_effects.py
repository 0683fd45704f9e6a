"""Reconciler settings, observed in-process: the app's own reconciler runs against a backend that
records the specs it is handed and reports what the test tells it to (no processes started).

Listed in ``tests/api/test_settings_audit.py`` (``OBSERVED_IN``): ``ORGPLANE_REDIS_ORG_USERS``,
``ORGPLANE_INSTANCE_REDIS_HOST``, ``ORGPLANE_START_TIMEOUT``, ``ORGPLANE_DOMAIN_RECHECK_HOURS``,
``ORGPLANE_DNS_RESOLVER``, ``ORGPLANE_RECONCILER_ENABLED``, ``ORGPLANE_INSTANCE_IMAGE``,
``ORGPLANE_INSTANCE_CONTROL_PLANE_URL``, ``ORGPLANE_HEARTBEAT_INTERVAL``, ``ORGPLANE_BASE_DOMAIN``,
``ORGPLANE_RECONCILE_INTERVAL``, ``ORGPLANE_LEASE_SECONDS``, ``ORGPLANE_UNHEALTHY_RESTART_AFTER``.
"""

from __future__ import annotations

import builtins
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from dnslib.server import DNSLogger, DNSServer
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis
from sqlmodel import select

import control_plane.reconciler.service as service
from control_plane.app import create_app
from control_plane.db.models import Domain, Instance, Org, utcnow
from control_plane.redis_acl import delete_org_redis_user, missing_org_users, username_for
from control_plane.runtime import Runtime
from control_plane.settings import Settings
from orgplane_wire.contract import Env
from provisioners.base import InstanceSpec, InstanceState, InstanceStatus, Provisioner
from tests.routing.helpers import ZoneResolver
from tests.support.api import direct_db, runtime_of
from tests.support.services import REDIS_URL, need, redis_available
from tests.support.wait import eventually

FAST = {"ORGPLANE_RECONCILER_ENABLED": "true", "ORGPLANE_RECONCILE_INTERVAL": "0.2"}


@pytest.fixture
def db_backend() -> str:
    return "sqlite"


class RecordingProvisioner(Provisioner):
    """Keeps every spec it is applied; reports each instance in ``state``."""

    name = "recording"
    supports_warm_pool = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.specs: dict[str, InstanceSpec] = {}
        self.applied_at: dict[str, float] = {}
        self.removed: builtins.list[str] = []
        self.listed_at: builtins.list[float] = []
        #: Called with the spec inside each apply (while the reconciler holds the org's lease).
        self.on_apply: Callable[[InstanceSpec], Awaitable[None]] | None = None
        self.state: InstanceState = "running"

    def _status(self, spec: InstanceSpec) -> InstanceStatus:
        return InstanceStatus(
            org_id=spec.org_id,
            state=self.state,
            endpoint="http://127.0.0.1:9",
            image=spec.image,
            instance_id=spec.instance_id,
            fingerprint=spec.fingerprint(),
            labels=dict(spec.labels),
        )

    async def apply(self, *, spec: InstanceSpec) -> InstanceStatus:
        if self.on_apply is not None:
            await self.on_apply(spec)
        self.specs[spec.org_id] = spec
        self.applied_at.setdefault(spec.org_id, time.monotonic())
        return self._status(spec)

    async def status(self, *, org_id: str) -> InstanceStatus | None:
        spec = self.specs.get(org_id)
        return None if spec is None else self._status(spec)

    async def remove(self, *, org_id: str, keep_data: bool) -> None:
        if self.specs.pop(org_id, None) is not None:
            self.removed.append(org_id)

    async def list(self) -> builtins.list[InstanceStatus]:
        self.listed_at.append(time.monotonic())
        return [self._status(spec) for spec in self.specs.values()]


@asynccontextmanager
async def reconciling(
    monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> AsyncIterator[tuple[AsyncTestClient[Any], RecordingProvisioner]]:
    """The app with its reconciler running on a :class:`RecordingProvisioner`."""
    made: list[RecordingProvisioner] = []

    def create(name: str, **kwargs: Any) -> RecordingProvisioner:
        made.append(RecordingProvisioner(**kwargs))
        return made[-1]

    monkeypatch.setattr(service, "create_provisioner", create)
    async with AsyncTestClient(create_app(settings), base_url="http://127.0.0.1:8080") as client:
        yield client, made[0]


async def add_org(client: AsyncTestClient[Any]) -> str:
    async with direct_db(client) as db:
        org = Org(slug=f"s{uuid.uuid4().hex[:10]}", name="Settings")
        db.add(org)
        await db.commit()
        org_id = org.id
    client.app.state.reconciler.wake()
    return org_id


async def test_reconciler_enabled(make_settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Off (as in the API tests), the app runs no reconciler; on, it applies a new org."""
    async with reconciling(monkeypatch, make_settings(ORGPLANE_RECONCILER_ENABLED="false")) as (
        client,
        _,
    ):
        assert getattr(client.app.state, "reconciler", None) is None
    async with reconciling(monkeypatch, make_settings(**FAST)) as (client, backend):
        org_id = await add_org(client)
        await eventually(lambda: org_id in backend.specs, what="the org applied")


async def test_reconcile_interval(make_settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Unwoken, full passes (each lists the backend's instances) come one interval apart."""
    settings = make_settings(ORGPLANE_RECONCILER_ENABLED="true", ORGPLANE_RECONCILE_INTERVAL="0.4")
    async with reconciling(monkeypatch, settings) as (_, backend):
        await eventually(lambda: len(backend.listed_at) >= 4, what="four full passes")
    gaps = [b - a for a, b in itertools.pairwise(backend.listed_at)]
    assert all(0.35 <= gap < 2.0 for gap in gaps[:3]), gaps


async def test_lease_seconds(make_settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """While a replica works on an org, its claim on it runs the configured seconds."""
    settings = make_settings(**FAST, ORGPLANE_LEASE_SECONDS="300")
    seen: list[tuple[str, float]] = []
    async with reconciling(monkeypatch, settings) as (client, backend):

        async def read_lease(spec: InstanceSpec) -> None:
            async with direct_db(client) as db:
                row = await db.get(Instance, spec.org_id)
                assert row is not None
                assert row.lease_expires_at is not None
                seen.append((row.lease_owner, (row.lease_expires_at - utcnow()).total_seconds()))

        backend.on_apply = read_lease
        org_id = await add_org(client)
        await eventually(lambda: org_id in backend.specs, what="the org applied")
        replica = runtime_of(client).replica_id
    ((owner, left),) = seen
    assert owner == replica
    assert 290 < left <= 300


async def test_unhealthy_restart_after(make_settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """An instance that heartbeat once and went silent is unhealthy, and restarted only once
    it has been silent for the configured seconds."""
    settings = make_settings(
        **FAST, ORGPLANE_HEARTBEAT_INTERVAL="0.2", ORGPLANE_UNHEALTHY_RESTART_AFTER="2"
    )
    async with reconciling(monkeypatch, settings) as (client, backend):
        org_id = await add_org(client)

        async def started() -> bool:
            async with direct_db(client) as db:
                row = await db.get(Instance, org_id)
                return row is not None and row.started_at is not None

        # A heartbeat counts for the run the reconciler recorded as started.
        recorded: bool = await eventually(started, what="the run recorded")
        assert recorded
        async with direct_db(client) as db:  # its one heartbeat
            row = await db.get(Instance, org_id)
            assert row is not None
            row.last_heartbeat_at = utcnow()
            db.add(row)
            await db.commit()
        beat = time.monotonic()

        async def phase() -> str:
            async with direct_db(client) as db:
                org = await db.get(Org, org_id)
                return org.phase if org is not None else ""

        running: str = await eventually(
            lambda: _is(phase, "running"), what="running after its heartbeat"
        )
        unhealthy: str = await eventually(lambda: _is(phase, "unhealthy"), what="unhealthy")
        assert (running, unhealthy) == ("running", "unhealthy")
        await eventually(lambda: org_id in backend.removed, what="restarted", timeout=30)
        silent = time.monotonic() - beat
    assert silent >= 2


async def _is(phase: Callable[[], Awaitable[str]], wanted: str) -> str:
    """``wanted`` once ``phase()`` answers it, else ""."""
    return wanted if await phase() == wanted else ""


async def test_what_an_instance_is_handed(
    make_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The image, the control plane's address for instances, the heartbeat interval and the
    org's hostname under the base domain reach the instance's spec."""
    settings = make_settings(
        **FAST,
        ORGPLANE_INSTANCE_IMAGE="registry.test/orgplane-instance:7",
        ORGPLANE_INSTANCE_CONTROL_PLANE_URL="http://control-plane.internal:8080",
        ORGPLANE_HEARTBEAT_INTERVAL="7.5",
        ORGPLANE_BASE_DOMAIN="orgs.audit.test",
    )
    async with reconciling(monkeypatch, settings) as (client, backend):
        org_id = await add_org(client)
        spec = await eventually(lambda: backend.specs.get(org_id), what="the org applied")
    assert spec is not None
    assert spec.image == "registry.test/orgplane-instance:7"
    assert spec.env[Env.CONTROL_PLANE_URL] == "http://control-plane.internal:8080"
    assert spec.env[Env.JWKS_URL] == "http://control-plane.internal:8080/.well-known/jwks.json"
    assert spec.env[Env.HEARTBEAT_INTERVAL] == "7.5"
    assert spec.hostnames == (f"{spec.slug}.orgs.audit.test",)
    assert spec.env[Env.HOSTNAMES] == f"{spec.slug}.orgs.audit.test"


@pytest.mark.redis
@pytest.mark.parametrize("org_users", [True, False])
async def test_redis_org_users_and_instance_redis_host(
    make_settings: Any, monkeypatch: pytest.MonkeyPatch, org_users: bool
) -> None:
    """With org users on, each instance gets its own Redis user, at the host named for
    instances; off, instances get no Redis URL and no user is made."""
    need("Redis", redis_available())
    settings = make_settings(
        **FAST,
        ORGPLANE_REDIS_URL=REDIS_URL,
        ORGPLANE_REDIS_ORG_USERS=str(org_users).lower(),
        ORGPLANE_INSTANCE_REDIS_HOST="redis.instances.test",
    )
    admin = Redis.from_url(REDIS_URL)
    org_id = ""
    try:
        async with reconciling(monkeypatch, settings) as (client, backend):
            org_id = await add_org(client)
            spec = await eventually(lambda: backend.specs.get(org_id), what="the org applied")
            assert spec is not None
        has_user = not await missing_org_users(admin, [org_id])
        url = spec.env[Env.REDIS_URL]
        if org_users:
            parts = urlsplit(url)
            assert (parts.hostname, parts.port) == (
                "redis.instances.test",
                urlsplit(REDIS_URL).port,
            )
            assert parts.username == username_for(org_id)
            assert has_user
        else:
            assert url == ""
            assert not has_user
    finally:
        if org_id:
            await delete_org_redis_user(admin, org_id=org_id)
        await admin.aclose()


async def test_start_timeout(make_settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """An instance that runs but never sends a heartbeat is marked failed once the start
    timeout has passed, and taken down for another try."""
    settings = make_settings(**FAST, ORGPLANE_START_TIMEOUT="1.5")
    async with reconciling(monkeypatch, settings) as (client, backend):
        org_id = await add_org(client)

        async def last_error() -> str:
            async with direct_db(client) as db:
                row = await db.get(Instance, org_id)
                return row.last_error if row is not None else ""

        error: str = await eventually(last_error, what="the start to time out", timeout=30)
        failed_after = time.monotonic() - backend.applied_at[org_id]
        await eventually(lambda: org_id in backend.removed, what="the instance taken down")
    assert error == "no heartbeat arrived within the start timeout"
    assert failed_after >= 1.5


@pytest.fixture
def dns_zone() -> Iterator[tuple[ZoneResolver, int]]:
    zone = ZoneResolver()
    quiet = DNSLogger(log="-recv,-send,-request,-reply,-truncated,-error,-data", prefix=False)
    server = DNSServer(zone, address="127.0.0.1", port=0, logger=quiet)
    server.start_thread()
    try:
        yield zone, server.server.server_address[1]
    finally:
        server.stop()
        server.server.server_close()


async def test_domain_recheck_hours(
    make_settings: Any, monkeypatch: pytest.MonkeyPatch, dns_zone: tuple[ZoneResolver, int]
) -> None:
    """The reconciler's housekeeping re-checks a custom domain last checked more than the
    configured hours ago, and leaves one checked more recently alone."""
    zone, port = dns_zone
    settings = make_settings(
        **FAST, ORGPLANE_DOMAIN_RECHECK_HOURS="2", ORGPLANE_DNS_RESOLVER=f"127.0.0.1:{port}"
    )
    now = utcnow()
    # Written before the app starts: its reconciler's first pass does the housekeeping.
    runtime = Runtime.build(settings)
    try:
        async with runtime.sessions() as db:
            org = Org(slug="domains", name="Domains")
            db.add(org)
            await db.flush()
            for hostname, hours in (("due.example.com", 3), ("fresh.example.com", 1)):
                db.add(
                    Domain(
                        hostname=hostname,
                        org_id=org.id,
                        verification_token=uuid.uuid4().hex,
                        last_checked_at=now - timedelta(hours=hours),
                    )
                )
            await db.commit()
    finally:
        await runtime.close()
    async with reconciling(monkeypatch, settings) as (client, _):
        await eventually(
            lambda: "_orgplane-challenge.due.example.com" in zone.queries,
            what="the due domain re-checked",
        )
        async with direct_db(client) as db:
            checked = {d.hostname: d.last_checked_at for d in await db.exec(select(Domain))}
    due = checked["due.example.com"]
    assert due is not None
    assert due >= now
    assert checked["fresh.example.com"] == now - timedelta(hours=1)
    assert "_orgplane-challenge.fresh.example.com" not in zone.queries
