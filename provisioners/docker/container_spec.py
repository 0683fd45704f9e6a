"""What the docker backend asks the engine for, as pure data: no I/O, no SDK objects.

:func:`container_kwargs` returns the keyword arguments of ``client.containers.create``: one
container per org, hardened (non-root uid 10001, read-only root filesystem with a tmpfs ``/tmp``,
every capability dropped, ``no-new-privileges``, a pids limit, no Docker socket or host path
mounted), limited to the plan's CPU (a hard quota and a proportional weight) and memory, its
data in a named volume at ``/data``, restarted by the engine unless stopped on purpose, and
labelled for ownership and for Traefik.
"""

from __future__ import annotations

from typing import Any, Final

from orgplane_wire.contract import Env
from provisioners import traefik
from provisioners.base import BACKEND_ENV_NAMES, InstanceSpec, ProvisionerOptions
from provisioners.naming import (
    INSTANCE_ID_LABEL,
    SPEC_HASH_LABEL,
    instance_name,
    ownership_labels,
)

#: Where the data volume is mounted inside the container.
DATA_PATH: Final = "/data"
#: The image's unprivileged user (deploy/Dockerfile.instance); set again so another image runs
#: unprivileged too.
RUN_AS: Final = "10001:10001"
PIDS_LIMIT: Final = 256
TMPFS: Final = {"/tmp": "rw,noexec,nosuid,nodev,size=64m"}  # noqa: S108 - a private tmpfs


#: Label prefixes only the platform sets: Traefik reads routing from container labels, and the
#: engine copies an image's labels onto every container made from it.
RESERVED_LABEL_PREFIXES: Final = ("traefik.", "orgplane.")


def reserved_image_labels(image_labels: dict[str, str] | None) -> list[str]:
    """The labels of an image that would reach routing or ownership if it ran (sorted).

    Docker merges an image's labels into its containers' and cannot drop one, so an image
    carrying ``traefik.http.routers.x.rule=Host(`victim.example`)`` would claim another org's
    host through Traefik's Docker provider. Such an image is refused, never run."""
    return sorted(
        key for key in image_labels or {} if key.lower().startswith(RESERVED_LABEL_PREFIXES)
    )


def container_name(spec: InstanceSpec) -> str:
    """The container's name, which is also its DNS name on the Docker network."""
    return instance_name(slug=spec.slug, org_id=spec.org_id)


def volume_labels(spec: InstanceSpec, *, options: ProvisionerOptions) -> dict[str, str]:
    """Labels of the org's data volume."""
    return {
        **spec.labels,
        **ownership_labels(org_id=spec.org_id, deployment_id=options.deployment_id),
    }


def container_labels(spec: InstanceSpec, *, options: ProvisionerOptions) -> dict[str, str]:
    """Ownership, fingerprint and (when the org has hostnames) Traefik routing labels."""
    labels = dict(spec.labels)
    if spec.hostnames:
        labels.update(
            traefik.docker_labels(
                org_id=spec.org_id,
                slug=spec.slug,
                hostnames=spec.hostnames,
                port=options.instance_port,
                entrypoints=options.entrypoints,
                tls=options.tls,
                cert_resolver=options.cert_resolver,
                network=options.docker_network or None,
            )
        )
    labels.update(ownership_labels(org_id=spec.org_id, deployment_id=options.deployment_id))
    labels[INSTANCE_ID_LABEL] = spec.instance_id
    labels[SPEC_HASH_LABEL] = spec.fingerprint()
    return labels


def container_env(spec: InstanceSpec, *, options: ProvisionerOptions) -> dict[str, str]:
    """The instance's environment: the spec's, plus where it listens and keeps its data."""
    env = {k: v for k, v in spec.env.items() if k not in BACKEND_ENV_NAMES}
    env[Env.DATA_DIR] = DATA_PATH
    env[Env.BIND_HOST] = "0.0.0.0"  # noqa: S104 - inside the container's network namespace
    env[Env.PORT] = str(options.instance_port)
    env[Env.INTERNAL_HOSTS] = container_name(spec)
    return env


def health_check(options: ProvisionerOptions) -> dict[str, Any]:
    """The container's health check: the image's at ``docker_health_interval``, or none.

    None by default. The control plane hears an instance's health from its heartbeats (it
    restarts one silent for ``unhealthy_restart_after``), and Docker restarts nothing for being
    unhealthy, so a check only costs: each runs a process in the container through the engine,
    0.16 to 0.33 CPU-second between the engine and the container, more with more containers on
    the engine (``docs/performance.md``), which at the image's 10 s interval made the checks most
    of an idle org's CPU. Without one, Traefik's
    Docker provider routes to the container as soon as it runs, not after its first check."""
    if options.docker_health_interval <= 0:
        return {"test": ["NONE"]}
    # The image's test, timeout, retries and start period; only the interval is ours.
    return {"interval": int(options.docker_health_interval * 1_000_000_000)}


def container_kwargs(spec: InstanceSpec, *, options: ProvisionerOptions) -> dict[str, Any]:
    """Keyword arguments of ``DockerClient.containers.create`` for the org's instance."""
    name = container_name(spec)
    memory = f"{spec.resources.memory_mb}m"
    kwargs: dict[str, Any] = {
        "image": spec.image,
        "name": name,
        "hostname": name,
        "environment": container_env(spec, options=options),
        "labels": container_labels(spec, options=options),
        "volumes": {spec.data_volume: {"bind": DATA_PATH, "mode": "rw"}},
        "user": RUN_AS,
        "read_only": True,
        "tmpfs": dict(TMPFS),
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges:true"],
        "pids_limit": PIDS_LIMIT,
        "nano_cpus": int(spec.resources.cpu * 1_000_000_000),
        # The same figure as a weight, so under contention instances share the cores in
        # proportion to their plans (and yield to platform containers at the default 1024).
        "cpu_shares": max(2, int(spec.resources.cpu * 1024)),
        "mem_limit": memory,
        "memswap_limit": memory,  # equal to the memory limit: no swap on top
        "restart_policy": {"Name": "unless-stopped"},
        "log_config": {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}},
        "healthcheck": health_check(options),
    }
    if options.docker_network:
        kwargs["network"] = options.docker_network
    if options.docker_publish_ports:
        # A free port chosen by the engine, on loopback only.
        kwargs["ports"] = {f"{options.instance_port}/tcp": ("127.0.0.1", None)}
    return kwargs
