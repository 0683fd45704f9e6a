"""The provisioner interface: what every backend guarantees, and the data it speaks.

A provisioner makes an org's instance exist and run as an :class:`InstanceSpec` says, reports
what exists as :class:`InstanceStatus`, and removes it. The reconciler calls it on every pass, on
every control-plane replica (one replica per org at a time, by lease), so every method is:

* **keyword-only and async**; a sync SDK runs off the event loop (``asyncio.to_thread``);
* **idempotent**: calling twice is calling once. A create that finds the object already there
  (HTTP 409) *adopts* it; a delete that finds nothing (HTTP 404) is *done*. A crash between any
  two steps is finished by the next call;
* **confined to its own objects**: every object carries ``orgplane.org-id``,
  ``orgplane.managed-by`` (= :attr:`ProvisionerOptions.deployment_id`) and
  ``orgplane.instance-id``; a backend never changes or deletes an object whose managed-by label is
  not its deployment id, and raises :class:`~provisioners.errors.PermanentProvisionerError` when
  such an object stands in its way;
* **explicit about failure**: :class:`~provisioners.errors.RetryableProvisionerError` (try again
  later) or :class:`~provisioners.errors.PermanentProvisionerError` (someone must change
  something). Messages never contain secrets.

Backends register under the entry-point group ``orgplane.provisioners`` (see ``registry.py``) and
are built as ``Backend(options=ProvisionerOptions(...))``.
"""

from __future__ import annotations

import abc
import builtins
import dataclasses
import hashlib
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Literal

from orgplane_wire import contract
from orgplane_wire.contract import Env
from provisioners.errors import UnsupportedOperationError
from provisioners.naming import check_label_value, check_org_id, data_volume_name

#: ``absent``: nothing runs, but objects of ours remain (kept data, leftovers of a crash);
#: ``creating``: objects are being made; ``starting``: it runs but is not ready yet;
#: ``running``: ready; ``stopped``: stopped on purpose, data kept; ``failed``: see ``message``.
InstanceState = Literal["absent", "creating", "starting", "running", "stopped", "failed"]

#: Environment variables that hold secrets: kept out of plain manifests (Kubernetes puts them in
#: a Secret) and out of every repr, log line and error message.
SECRET_ENV_NAMES = frozenset({Env.INSTANCE_CREDENTIAL, Env.REDIS_URL, Env.POOL_SECRET})
#: Variables the backend sets itself (where the instance listens and keeps its data).
BACKEND_ENV_NAMES = frozenset({Env.DATA_DIR, Env.BIND_HOST, Env.PORT, Env.INTERNAL_HOSTS})


@dataclass(frozen=True, kw_only=True)
class Resources:
    """What the org's plan allows its instance to use."""

    cpu: float = 0.5  #: cores (fractions allowed)
    memory_mb: int = 512
    storage_mb: int = 1024  #: size of the data volume where the backend sizes volumes


@dataclass(frozen=True, kw_only=True)
class InstanceSpec:
    """Everything a backend needs to run one org's instance. Built by the reconciler.

    ``env`` comes from :func:`instance_env` and holds the instance credential: it is left out of
    ``repr`` and never logged. ``data_volume`` defaults to a name derived from the org id alone.
    ``labels`` are extra labels for every object (the ownership labels are added by the backend).
    """

    org_id: str
    slug: str
    instance_id: str
    image: str
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    resources: Resources = field(default_factory=Resources)
    data_volume: str = ""
    hostnames: tuple[str, ...] = ()
    generation: int = 0
    labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_org_id(self.org_id)
        check_label_value(self.instance_id, what="instance_id")
        if not self.data_volume:
            object.__setattr__(self, "data_volume", data_volume_name(self.org_id))

    def fingerprint(self) -> str:
        """A digest of every field: equal fingerprints mean nothing to update."""
        body = dataclasses.asdict(self)
        body["env"], body["labels"] = dict(self.env), dict(self.labels)
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def plain_env(self) -> dict[str, str]:
        """The environment without its secrets."""
        return {k: v for k, v in self.env.items() if k not in SECRET_ENV_NAMES}

    def secret_env(self) -> dict[str, str]:
        """Only the secret part of the environment (values never to be logged)."""
        return {k: v for k, v in self.env.items() if k in SECRET_ENV_NAMES}


@dataclass(frozen=True, kw_only=True)
class InstanceStatus:
    """What a backend sees of an org's instance.

    ``endpoint`` is the base URL the control plane reaches the instance at (empty when none);
    ``handle`` is a JSON-able map that finds the objects again after a control-plane restart
    (the reconciler stores it); ``message`` explains a state that is not ``running``.
    """

    org_id: str
    state: InstanceState
    endpoint: str = ""
    handle: Mapping[str, Any] = field(default_factory=dict)
    message: str = ""
    image: str = ""
    instance_id: str = ""
    fingerprint: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)


def _names(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return tuple(value)


@dataclass(frozen=True, kw_only=True)
class ProvisionerOptions:
    """Configuration of the backends; each reads the fields that concern it.

    The control plane fills it from its settings (``ProvisioningSettings`` and
    ``RoutingSettings`` fields carry the same names): see :meth:`from_mapping`.
    """

    #: Value of the ``orgplane.managed-by`` label: two deployments sharing an engine or cluster
    #: (or two test runs) never touch each other's objects.
    deployment_id: str = "orgplane"
    #: Where the local backend keeps each org's data (``<data_root>/orgs/<org_id>``).
    data_root: Path = Path(".orgplane")
    #: Port the instance listens on inside its container or pod.
    instance_port: int = contract.DEFAULT_PORT
    #: Traefik entrypoints, TLS and certificate resolver of org routes.
    entrypoints: tuple[str, ...] = ("web",)
    tls: bool = False
    cert_resolver: str = ""
    #: Docker network org containers join (empty: the default bridge).
    docker_network: str = ""
    #: Publish each container's port on a free 127.0.0.1 port and use it as the endpoint.
    docker_publish_ports: bool = False
    #: Seconds between the engine's health checks of org containers; 0: none (the image's
    #: HEALTHCHECK is turned off, the instance's heartbeats are its health).
    docker_health_interval: float = 0.0
    #: ``shared``: every org in ``kubernetes_namespace``; ``per-org``: a namespace per org with a
    #: NetworkPolicy and a ResourceQuota.
    kubernetes_namespace_mode: Literal["shared", "per-org"] = "shared"
    kubernetes_namespace: str = "orgplane"
    kubernetes_ingress: Literal["ingressroute", "ingress", "none"] = "ingressroute"
    kubernetes_ingress_class: str = "traefik"
    #: Namespace of the ingress controller: the only source of traffic in per-org mode.
    kubernetes_ingress_namespace: str = "traefik"
    #: Namespace and port of the control plane, and namespace of Redis: the only destinations
    #: (with DNS) an instance may reach in per-org mode.
    kubernetes_control_plane_namespace: str = "orgplane"
    kubernetes_control_plane_port: int = 8080
    kubernetes_redis_namespace: str = "orgplane"
    kubernetes_redis_port: int = 6379
    #: StorageClass of data volumes (empty: the cluster's default).
    kubernetes_storage_class: str = ""

    def __post_init__(self) -> None:
        check_label_value(self.deployment_id, what="deployment_id")
        object.__setattr__(self, "entrypoints", _names(self.entrypoints))
        object.__setattr__(self, "data_root", Path(self.data_root))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], **overrides: Any) -> ProvisionerOptions:
        """Options from a mapping of settings, ignoring keys that are not options.

        ``ProvisionerOptions.from_mapping({**settings.provisioning.model_dump(),
        **settings.routing.model_dump()}, data_root=settings.server.data_dir)``.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        picked = {k: v for k, v in {**values, **overrides}.items() if k in known}
        return cls(**picked)


def instance_env(
    *,
    org_id: str,
    slug: str,
    instance_id: str,
    control_plane_url: str,
    credential: str,
    jwks_url: str = "",
    issuer: str = "",
    audience: str = "",
    redis_url: str = "",
    hostnames: tuple[str, ...] = (),
    heartbeat_interval: float = contract.DEFAULT_HEARTBEAT_INTERVAL,
    limits: Mapping[str, int] | None = None,
    version: str = "",
) -> dict[str, str]:
    """The ``contract.Env`` environment of an instance (the backend adds where it listens)."""
    base = control_plane_url.rstrip("/")
    env = {
        Env.ORG_ID: org_id,
        Env.ORG_SLUG: slug,
        Env.INSTANCE_ID: instance_id,
        Env.CONTROL_PLANE_URL: base,
        Env.JWKS_URL: jwks_url or f"{base}/.well-known/jwks.json",
        Env.ISSUER: issuer or base,
        Env.AUDIENCE: audience or contract.org_audience(org_id),
        Env.INSTANCE_CREDENTIAL: credential,
        Env.REDIS_URL: redis_url,
        Env.REDIS_NAMESPACE: contract.redis_namespace(org_id),
        Env.HOSTNAMES: ",".join(hostnames),
        Env.HEARTBEAT_INTERVAL: f"{heartbeat_interval:g}",
        Env.LIMITS: json.dumps(dict(limits or {}), sort_keys=True, separators=(",", ":")),
    }
    if version:
        env[Env.VERSION] = version
    return env


class Provisioner(abc.ABC):
    """A backend that runs org instances. Subclasses implement the four abstract methods."""

    #: The backend's entry-point name.
    name: ClassVar[str] = ""
    #: Whether a warm-pool spare (an ordinary instance started with a pre-chosen org id and a
    #: pool secret, assigned to its org later over HTTP) can serve as the org on this backend.
    supports_warm_pool: ClassVar[bool] = True

    def __init__(self, *, options: ProvisionerOptions) -> None:
        self.options = options

    @abc.abstractmethod
    async def apply(self, *, spec: InstanceSpec) -> InstanceStatus:
        """Create the org's instance, or update it to match ``spec``, and make it run.

        Idempotent: an unchanged spec changes nothing; a changed one replaces what differs and
        keeps the data. Objects that exist already (409 on create) are adopted when ours. A
        stopped instance is started. Returns at once with the status, which may still be
        ``creating`` or ``starting``: poll :meth:`status`. Raises ``PermanentProvisionerError``
        for a spec or configuration that cannot work, ``RetryableProvisionerError`` otherwise.
        """

    @abc.abstractmethod
    async def status(self, *, org_id: str) -> InstanceStatus | None:
        """What exists of the org's instance, or ``None`` when no object of ours exists.

        State ``absent`` means no instance runs but objects of ours remain (kept data, or what a
        crash left). Never changes anything.
        """

    @abc.abstractmethod
    async def remove(self, *, org_id: str, keep_data: bool) -> None:
        """Remove the org's instance and, unless ``keep_data``, its data.

        Idempotent: whatever is already gone (404) counts as removed; removing twice is fine.
        Only objects of ours are touched.
        """

    @abc.abstractmethod
    async def list(self) -> builtins.list[InstanceStatus]:
        """Every org with objects of ours, one status each, including orgs the control plane no
        longer knows (orphans, which the reconciler removes after a grace period)."""

    async def adopt(self, *, spec: InstanceSpec) -> None:  # noqa: B027 - optional hook
        """Make what surrounds a claimed warm-pool spare the org's, without restarting it.

        Called once the spare, started under ``spec.org_id``, has taken the org's assignment
        over HTTP. A backend whose routes or policies live in objects of their own brings those
        to ``spec`` here (the Kubernetes backend: Service, IngressRoute or Ingress,
        NetworkPolicy, ResourceQuota); the running instance, its secrets and its data are left
        alone. Backends routed by the control plane's Traefik configuration need nothing: the
        default does nothing. The next :meth:`apply` replaces the rest as for any changed spec.
        """

    async def restart(self, *, org_id: str) -> InstanceStatus:
        """Restart the running instance in place (same spec, same data)."""
        raise UnsupportedOperationError(
            f"the {self.name or type(self).__name__} backend "
            "cannot restart in place; remove and apply instead"
        )

    async def stop(self, *, org_id: str) -> None:
        """Stop the instance, keeping its objects and data; :meth:`apply` starts it again."""
        raise UnsupportedOperationError(
            f"the {self.name or type(self).__name__} backend "
            "cannot stop; remove with keep_data=True instead"
        )

    def logs(
        self,
        *,
        org_id: str,
        since: datetime | None = None,
        tail: int | None = None,
        follow: bool = False,
    ) -> AsyncIterator[str]:
        """The instance's log lines, oldest first, without their newline.

        ``tail``: only the last ``tail`` lines (None: all the backend keeps); ``since`` (an
        aware datetime): only lines logged at or after it; ``follow``: after those, each new
        line as it is written, until the caller stops iterating (closing the iterator releases
        the stream). Lines are cut at :data:`provisioners.logstream.MAX_LINE_CHARS`. Nothing is
        changed. Iterating raises ``PermanentProvisionerError`` when the org has no instance of
        ours, ``RetryableProvisionerError`` when the engine does not answer.
        """
        raise UnsupportedOperationError(
            f"the {self.name or type(self).__name__} backend cannot read instance logs"
        )

    async def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release clients and connections (the control plane calls it on shutdown)."""
