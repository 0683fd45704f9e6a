"""The per-process runtime: settings, database, keys and stores, built once at start-up.

It holds connections and caches only; all state lives in the database or Redis, so any number
of control-plane processes can serve the same platform.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeAlias

import structlog
from litestar.di import NamedDependency
from litestar.params import SkipValidation
from litestar.stores.base import Store
from litestar.stores.memory import MemoryStore
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.db.engine import make_engine, make_sessionmaker
from control_plane.ratelimit import Throttle
from control_plane.settings import Settings
from control_plane.signing.keys import KeyRing
from orgplane_wire.secret_box import SecretBox

if TYPE_CHECKING:  # set by the app's lifespan; importing them here would cost start-up
    from redis.asyncio import Redis

    from control_plane.process_metrics import ControlPlaneMetrics
    from provisioners.base import Provisioner

log = structlog.get_logger("orgplane.runtime")


class Mailer(Protocol):
    """The outbox sender of this process (``control_plane.mail.sender.MailSender``, which sits
    above the runtime and sets itself here)."""

    async def run_forever(self) -> None: ...


class ConfigurationError(RuntimeError):
    """The settings cannot run a control plane; the message says what to change."""


def _embedded_secret(data_dir: Path) -> str:
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    value = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value)
    log.warning("created a deployment secret for embedded mode", path=str(path))
    return value


def resolve_secret(settings: Settings) -> str:
    """The deployment secret; embedded mode creates one in its data directory."""
    value = settings.security.secret_key.get_secret_value()
    if value:
        return value
    if settings.server.mode == "embedded":
        return _embedded_secret(settings.server.data_dir)
    raise ConfigurationError("ORGPLANE_SECRET_KEY is required outside embedded mode.")


def _make_store(settings: Settings, namespace: str) -> Store:
    if settings.store.redis_url:
        from litestar.stores.redis import RedisStore

        return RedisStore.with_client(url=settings.store.redis_url, namespace=namespace)
    return MemoryStore()


@dataclass
class Runtime:
    """What request handlers and background tasks share within one process."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    #: Sessions whose statements run outside a transaction (PostgreSQL: no ``BEGIN`` and
    #: ``ROLLBACK`` round trips), for hot paths whose reads need no common snapshot and whose
    #: writes, if any, are single statements.
    readers: async_sessionmaker[AsyncSession]
    keyring: KeyRing
    box: SecretBox
    rate_limits: Store
    issuer: str
    #: Every rate limit of the control plane, counted atomically (``ratelimit.py``).
    throttle: Throttle = field(default_factory=lambda: Throttle.build("", prefix=""))
    #: Access tokens ended before their expiry (logout), by ``jti`` (``signing/revocation.py``).
    revoked: Store = field(default_factory=MemoryStore)
    #: Staff reasons between "Open" in the UI and the instance's sign-in
    #: (``tokens/support_open.py``).
    support_open: Store = field(default_factory=MemoryStore)
    #: What Traefik's HTTP provider was served, for hibernation (``routing/handover.py``).
    routing: Store = field(default_factory=MemoryStore)
    replica_id: str = field(default_factory=lambda: secrets.token_hex(6))
    #: The provisioner backend, set by the app's lifespan; None in a runtime built without one.
    provisioner: Provisioner | None = None
    #: Admin connection to the Redis that holds the org namespaces, set by the app's lifespan
    #: when org instances have their own Redis users.
    redis_admin: Redis | None = None
    #: This app's Prometheus series, set by the app's lifespan; None in a runtime built
    #: without an app.
    metrics: ControlPlaneMetrics | None = None
    #: This process's outbox sender, set by the app's lifespan when an SMTP server is
    #: configured.
    mailer: Mailer | None = None

    @property
    def audience(self) -> str:
        """``aud`` of control-plane access tokens."""
        return self.issuer

    @classmethod
    def build(cls, settings: Settings) -> Runtime:
        """Connect to the database and stores named by ``settings``."""
        if settings.server.mode == "embedded":
            # Keys, the database and org data live here: this user's only (0700).
            settings.server.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            settings.server.data_dir.chmod(0o700)
        secret = resolve_secret(settings)
        engine = make_engine(
            settings.database_url,
            echo=settings.db.database_echo,
            pool_size=settings.db.database_pool_size,
            pool_timeout=settings.db.database_pool_timeout,
        )
        box = SecretBox(secret, purpose="orgplane signing keys v1")
        return cls(
            settings=settings,
            engine=engine,
            sessions=make_sessionmaker(engine),
            readers=make_sessionmaker(engine.execution_options(isolation_level="AUTOCOMMIT")),
            keyring=KeyRing(box, alg=settings.tokens.signing_alg),
            box=box,
            rate_limits=_make_store(settings, "orgplane:ratelimit"),
            issuer=settings.server.base_url,
            revoked=_make_store(settings, "orgplane:revoked"),
            support_open=_make_store(
                settings, f"orgplane:{settings.provisioning.deployment_id}:support-open"
            ),
            routing=_make_store(
                settings, f"orgplane:{settings.provisioning.deployment_id}:routing"
            ),
            throttle=Throttle.build(
                settings.store.redis_url,
                prefix=f"orgplane:{settings.provisioning.deployment_id}:limits",
            ),
        )

    async def close(self) -> None:
        """Release connections."""
        await self.engine.dispose()
        await self.throttle.close()


#: Set on ``request.state`` by a handler whose effect a reconcile pass should see at once
#: (read by ``reconciler.service.wake_after_org_write``).
WAKE_RECONCILER = "wake_reconciler"


#: How handlers and dependencies receive the runtime (by the parameter name ``runtime``). It is
#: this process's own object, so Litestar does not validate it: with validation, msgspec would
#: resolve the annotations of every field, the lifespan-set ones included, on each request.
RuntimeDep: TypeAlias = NamedDependency[SkipValidation[Runtime]]
