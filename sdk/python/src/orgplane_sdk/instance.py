"""Everything wired from the environment: ``OrgInstance.from_env().wrap(app)``.

:class:`InstanceConfig` reads the contract's variables (``ORGPLANE_*``) and refuses, with every
problem named at once, an environment an instance cannot run with. :class:`OrgInstance` holds
the verifier and the heartbeat sender made from it; :meth:`OrgInstance.wrap` puts the
:class:`~orgplane_sdk.middleware.OrgGuard` in front of an ASGI app and ties the heartbeats to the
app's lifespan: they start with the server and stop when it shuts down (uvicorn does that on
SIGTERM, well within the contract's 10 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from orgplane_sdk.contract import (
    DEFAULT_HEARTBEAT_INTERVAL,
    DEFAULT_PORT,
    Env,
    Limits,
    org_audience,
    redis_namespace,
)
from orgplane_sdk.heartbeat import HealthCheck, HeartbeatSender, all_healthy
from orgplane_sdk.middleware import ASGIApp, OrgGuard, Receive, Scope, Send
from orgplane_sdk.verifier import TokenVerifier

_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class ConfigError(ValueError):
    """The environment cannot configure an instance; the message lists every problem."""


def _split(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


@dataclass(frozen=True)
class InstanceConfig:
    """An org instance's configuration, as the provisioner set it."""

    org_id: str
    instance_credential: str = field(repr=False)
    data_dir: Path
    control_plane_url: str = ""
    jwks_url: str = ""
    issuer: str = ""
    audience: str = ""
    org_slug: str = ""
    instance_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    hostnames: tuple[str, ...] = ()
    internal_hosts: tuple[str, ...] = ()
    redis_url: str = field(default="", repr=False)
    heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL
    limits: Limits = field(default_factory=lambda: Limits())
    bind_host: str = "0.0.0.0"  # noqa: S104 - an instance listens inside its container or pod
    port: int = DEFAULT_PORT
    version: str = "0.0.0"

    @property
    def redis_namespace(self) -> str:
        """The prefix of every Redis key and channel of the org."""
        return redis_namespace(self.org_id)

    @property
    def allowed_hosts(self) -> frozenset[str]:
        """Hosts requests may name: the org's, the instance's internal names, loopback."""
        local = ("localhost", "127.0.0.1", "::1", socket.gethostname())
        return frozenset({*self.hostnames, *self.internal_hosts, *local})

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> InstanceConfig:
        """The configuration in ``env`` (default ``os.environ``); :class:`ConfigError` if bad."""
        env = os.environ if env is None else env

        def get(name: str) -> str:
            return env.get(name, "").strip()

        problems: list[str] = []
        org_id, credential = get(Env.ORG_ID), get(Env.INSTANCE_CREDENTIAL)
        cp = get(Env.CONTROL_PLANE_URL)
        if not _ID.fullmatch(org_id):
            problems.append(f"{Env.ORG_ID} must be 1-64 letters, digits, '-' or '_'")
        if len(credential) < 16:
            problems.append(f"{Env.INSTANCE_CREDENTIAL} is required (16+ characters)")
        if not get(Env.DATA_DIR):
            problems.append(f"{Env.DATA_DIR} is required")
        if not cp and not (get(Env.JWKS_URL) and get(Env.ISSUER)):
            problems.append(f"{Env.CONTROL_PLANE_URL} is required (or both JWKS URL and issuer)")
        namespace = get(Env.REDIS_NAMESPACE)
        if namespace and namespace != redis_namespace(org_id):
            problems.append(f"{Env.REDIS_NAMESPACE} must be {redis_namespace(org_id)!r}")
        try:
            interval = float(get(Env.HEARTBEAT_INTERVAL) or DEFAULT_HEARTBEAT_INTERVAL)
            port = int(get(Env.PORT) or DEFAULT_PORT)
            limits = json.loads(get(Env.LIMITS) or "{}")
        except ValueError:
            interval, port, limits = 0.0, 0, None
        if not 0.05 <= interval <= 3600:
            problems.append(f"{Env.HEARTBEAT_INTERVAL} must be 0.05-3600 seconds")
        if not 0 < port < 65536:
            problems.append(f"{Env.PORT} must be a port number")
        if not isinstance(limits, dict):
            problems.append(f"{Env.LIMITS} must be a JSON object")
        if problems:
            raise ConfigError("; ".join(problems))
        base = cp.rstrip("/")
        return cls(
            org_id=org_id,
            instance_credential=credential,
            data_dir=Path(get(Env.DATA_DIR)),
            control_plane_url=base,
            jwks_url=get(Env.JWKS_URL) or f"{base}/.well-known/jwks.json",
            issuer=get(Env.ISSUER) or base,
            audience=get(Env.AUDIENCE) or org_audience(org_id),
            org_slug=get(Env.ORG_SLUG),
            instance_id=get(Env.INSTANCE_ID) or uuid.uuid4().hex,
            hostnames=_split(get(Env.HOSTNAMES)),
            internal_hosts=_split(get(Env.INTERNAL_HOSTS)),
            redis_url=get(Env.REDIS_URL),
            heartbeat_interval=interval,
            limits=limits,
            bind_host=get(Env.BIND_HOST) or "0.0.0.0",  # noqa: S104 - see the field
            port=port,
            version=get(Env.VERSION) or "0.0.0",
        )


class OrgInstance:
    """An org instance's SDK side: verifier, heartbeats, and the guard for an ASGI app."""

    def __init__(
        self,
        config: InstanceConfig,
        *,
        health: HealthCheck | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.config = config
        self._http = http or httpx.AsyncClient(timeout=10.0, follow_redirects=False)
        self.verifier = TokenVerifier(
            jwks_url=config.jwks_url,
            issuer=config.issuer,
            audience=config.audience,
            org_id=config.org_id,
            http=self._http,
        )
        #: The org's Redis (``orgplane_sdk.redis.OrgRedis``) when the platform gives it one;
        #: its revocation list is then followed, and refused tokens never reach the app.
        self.redis: Any = None
        self.revocations: Any = None
        if config.redis_url:
            self._follow_revocations()
        health = health or (self._redis_health if self.redis is not None else all_healthy)
        self._health = health
        self.guard: OrgGuard | None = None
        self.heartbeat: HeartbeatSender | None = None
        if config.control_plane_url:
            self.heartbeat = HeartbeatSender(
                control_plane_url=config.control_plane_url,
                credential=config.instance_credential,
                org_id=config.org_id,
                instance_id=config.instance_id,
                version=config.version,
                interval=config.heartbeat_interval,
                limits=config.limits,
                health=health,
                usage=lambda: {"requests": self.guard.requests if self.guard else 0},
                http=self._http,
            )
        self._tasks: list[asyncio.Task[Any]] = []

    def _follow_revocations(self) -> None:
        try:
            from orgplane_sdk.redis import OrgRedis, Revocations
        except ImportError as exc:  # redis-py missing: the revocation list cannot be followed
            raise ConfigError(
                f"{Env.REDIS_URL} is set: install orgplane-instance-sdk[redis]"
            ) from exc
        self.redis = OrgRedis(self.config.redis_url, self.config.org_id)
        self.revocations = Revocations(self.redis, on_key_retired=self.verifier.retire)

    async def _redis_health(self) -> tuple[bool, bool]:
        return True, bool(await self.redis.ping())

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **kwargs: Any) -> OrgInstance:
        """An instance configured by the ``ORGPLANE_*`` environment (:class:`InstanceConfig`)."""
        return cls(InstanceConfig.from_env(env), **kwargs)

    @property
    def limits(self) -> Limits:
        """The plan limits in force (the last heartbeat answer's, else the environment's)."""
        return self.heartbeat.limits if self.heartbeat else self.config.limits

    @property
    def running(self) -> bool:
        """Whether the heartbeat loop (or the revocation follower, the first JWKS fetch) runs."""
        return any(not task.done() for task in self._tasks)

    async def ready(self) -> bool:
        """Readiness: the app's health check says its database and Redis work."""
        db_ok, redis_ok = await self._health()
        return db_ok and redis_ok

    def wrap(self, app: ASGIApp) -> ASGIApp:
        """``app`` behind the guard, with heartbeats running for the app's lifespan."""
        self.guard = OrgGuard(
            app,
            verifier=self.verifier,
            allowed_hosts=self.config.allowed_hosts,
            ready=self.ready,
            revoked=self.revocations.refuses if self.revocations is not None else None,
        )
        guard = self.guard

        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "lifespan":
                await self._lifespan(app, scope, receive, send)
            else:
                await guard(scope, receive, send)

        return wrapped

    async def start(self) -> None:
        """Start fetching the JWKS and the heartbeat loop (idempotent)."""
        if self._tasks:
            return
        self._tasks.append(asyncio.create_task(self.verifier.refresh(), name="orgplane-jwks"))
        if self.heartbeat is not None:
            task = asyncio.create_task(self.heartbeat.run(), name="orgplane-heartbeat")
            self._tasks.append(task)
        if self.revocations is not None:
            task = asyncio.create_task(self.revocations.run(), name="orgplane-revocations")
            self._tasks.append(task)

    async def stop(self) -> None:
        """Stop the heartbeats and close the HTTP client."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.verifier.aclose()
        await self._http.aclose()
        if self.redis is not None:
            await self.redis.aclose()

    async def _lifespan(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app's lifespan with :meth:`start` and :meth:`stop` around it; serve the
        lifespan protocol alone for an app that does not speak it."""
        seen: list[str] = []

        async def hooked() -> Any:
            message = await receive()
            seen.append(message["type"])
            if message["type"] == "lifespan.startup":
                await self.start()
            elif message["type"] == "lifespan.shutdown":
                await self.stop()
            return message

        try:
            await app(scope, hooked, send)
        except Exception:
            if seen:
                raise
            # The app refused the lifespan scope before reading it: speak it for the app.
            while True:
                message = await hooked()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
