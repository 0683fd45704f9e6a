"""An org instance's configuration: read once from the ``contract.Env`` variables, nothing else.

The provisioner sets these variables; :meth:`InstanceConfig.from_env` checks them and fails
with one :class:`ConfigError` naming every problem, so a misconfigured instance never starts.
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orgplane_wire import contract
from orgplane_wire.contract import Env

_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
LIMIT_KEYS = frozenset(contract.Limits.__annotations__)


class ConfigError(ValueError):
    """The environment cannot configure an instance; the message lists what to fix."""


def normalize_host(value: str) -> str:
    """A Host header or hostname reduced to a lowercase name without port or trailing dot."""
    host = value.strip().lower()
    if host.startswith("["):  # [::1]:8000
        return host[1 : host.find("]")] if "]" in host else host
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def parse_limits(raw: str) -> dict[str, int]:
    """``ORGPLANE_LIMITS``: a JSON object of non-negative integers; unknown keys are refused."""
    if not raw.strip():
        return {}
    try:
        value: Any = json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"{Env.LIMITS} is not JSON") from exc
    return check_limits(value, source=Env.LIMITS)


def check_limits(value: Any, *, source: str) -> dict[str, int]:
    """Limits from ``value`` (env or heartbeat answer), or ConfigError."""
    if not isinstance(value, dict):
        raise ConfigError(f"{source} must be a JSON object")
    limits: dict[str, int] = {}
    for key, number in value.items():
        if key not in LIMIT_KEYS:
            raise ConfigError(f"{source}: unknown limit {key!r}")
        if isinstance(number, bool) or not isinstance(number, int) or number < 0:
            raise ConfigError(f"{source}: {key} must be a non-negative integer")
        limits[key] = number
    return limits


def _hosts(raw: str) -> tuple[str, ...]:
    return tuple(h for h in (normalize_host(part) for part in raw.split(",")) if h)


@dataclass(frozen=True)
class InstanceConfig:
    """Everything an org instance needs to know, validated."""

    org_id: str
    instance_credential: str
    data_dir: Path
    org_slug: str = ""
    instance_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    control_plane_url: str = ""
    jwks_url: str = ""
    issuer: str = ""
    audience: str = ""
    redis_url: str = ""
    hostnames: tuple[str, ...] = ()
    internal_hosts: tuple[str, ...] = ()
    heartbeat_interval: float = contract.DEFAULT_HEARTBEAT_INTERVAL
    limits: dict[str, int] = field(default_factory=dict)
    bind_host: str = "0.0.0.0"  # noqa: S104 - an instance listens inside its container or pod
    port: int = contract.DEFAULT_PORT
    log_format: str = "json"
    version: str = "0.1.0"

    @property
    def namespace(self) -> str:
        """Prefix of every Redis key and channel of this org."""
        return contract.redis_namespace(self.org_id)

    @property
    def allowed_hosts(self) -> frozenset[str]:
        """Hosts a request may name: the org's hostnames and the instance's internal names."""
        internal = {"localhost", "127.0.0.1", "::1", normalize_host(socket.gethostname())}
        if self.bind_host not in ("0.0.0.0", "::", ""):  # noqa: S104 - compared, not bound
            internal.add(normalize_host(self.bind_host))
        return frozenset({*self.hostnames, *self.internal_hosts, *internal})

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> InstanceConfig:
        """The configuration named by ``env`` (default: ``os.environ``)."""
        env = os.environ if env is None else env
        problems: list[str] = []

        def get(name: str, default: str = "") -> str:
            return env.get(name, default).strip()

        org_id = get(Env.ORG_ID)
        if not _ID.match(org_id):
            problems.append(f"{Env.ORG_ID} must be 1-64 letters, digits, '-' or '_'")
        credential = get(Env.INSTANCE_CREDENTIAL)
        if len(credential) < 16:
            problems.append(f"{Env.INSTANCE_CREDENTIAL} is required (16+ characters)")
        data_dir = get(Env.DATA_DIR)
        if not data_dir:
            problems.append(f"{Env.DATA_DIR} is required")
        namespace = get(Env.REDIS_NAMESPACE)
        if namespace and org_id and namespace != contract.redis_namespace(org_id):
            problems.append(f"{Env.REDIS_NAMESPACE} must be {contract.redis_namespace(org_id)!r}")
        instance_id = get(Env.INSTANCE_ID) or uuid.uuid4().hex
        if not _ID.match(instance_id):
            problems.append(f"{Env.INSTANCE_ID} must be 1-64 letters, digits, '-' or '_'")
        interval = _number(get(Env.HEARTBEAT_INTERVAL), contract.DEFAULT_HEARTBEAT_INTERVAL)
        if interval is None or not 0.05 <= interval <= 3600:
            problems.append(f"{Env.HEARTBEAT_INTERVAL} must be a number of seconds (0.05-3600)")
        port = _number(get(Env.PORT), contract.DEFAULT_PORT)
        if port is None or not port.is_integer() or not 0 <= port <= 65535:
            problems.append(f"{Env.PORT} must be a port number")
        log_format = get(Env.LOG_FORMAT, "json") or "json"
        if log_format not in ("console", "json"):
            problems.append(f"{Env.LOG_FORMAT} must be 'console' or 'json'")
        try:
            limits = parse_limits(get(Env.LIMITS))
        except ConfigError as exc:
            problems.append(str(exc))
        cp_url = get(Env.CONTROL_PLANE_URL).rstrip("/")
        jwks_url = get(Env.JWKS_URL) or (f"{cp_url}/.well-known/jwks.json" if cp_url else "")
        issuer = get(Env.ISSUER) or cp_url
        if not (jwks_url and issuer):
            problems.append(
                f"{Env.CONTROL_PLANE_URL} (or {Env.JWKS_URL} and {Env.ISSUER}) is required"
            )
        if problems:
            raise ConfigError("; ".join(problems))
        return cls(
            org_id=org_id,
            org_slug=get(Env.ORG_SLUG),
            instance_id=instance_id,
            instance_credential=credential,
            data_dir=Path(data_dir),
            control_plane_url=cp_url,
            jwks_url=jwks_url,
            issuer=issuer,
            audience=get(Env.AUDIENCE) or contract.org_audience(org_id),
            redis_url=get(Env.REDIS_URL),
            hostnames=_hosts(get(Env.HOSTNAMES)),
            internal_hosts=_hosts(get(Env.INTERNAL_HOSTS)),
            heartbeat_interval=float(interval or contract.DEFAULT_HEARTBEAT_INTERVAL),
            limits=limits,
            bind_host=get(Env.BIND_HOST) or "0.0.0.0",  # noqa: S104 - see the field
            port=int(port or 0),
            log_format=log_format,
            version=get(Env.VERSION) or "0.1.0",
        )


def _number(raw: str, default: float) -> float | None:
    if not raw:
        return float(default)
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) else None
