"""How org instances are provisioned, and the docker and kubernetes backends' options."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from control_plane.contract.declarations import declared_versions, split_entry
from control_plane.settings_groups.base import Group


class ProvisioningSettings(Group):
    """How org instances are provisioned."""

    provisioner: str = Field(
        "local", description="Provisioner backend: an entry point in `orgplane.provisioners`."
    )
    base_domain: str = Field("localhost", description="Orgs are reached at `{slug}.{base_domain}`.")
    instance_image: str = Field(
        "orgplane-instance:latest", description="Image of org instances (docker, kubernetes)."
    )
    allowed_images: list[str] = Field(
        default_factory=list,
        description="Images platform admins may give an org or a plan, as a JSON list: a "
        "repository (any tag of it) or `repository@sha256:<digest>` (that digest only), "
        "optionally followed by the org-instance contract versions its images speak, "
        "`;contract=1,2` (none: version 1; an image that speaks no version this control plane "
        "supports is refused). The repository of `instance_image` is always allowed; tenants "
        "never choose an image.",
    )

    @field_validator("allowed_images")
    @classmethod
    def _declarations(cls, value: list[str]) -> list[str]:
        for entry in value:
            _, declared = split_entry(entry)
            if declared and declared_versions(declared) is None:
                raise ValueError(
                    f"{entry!r}: declare contract versions as `;contract=1` or `;contract=1,2`"
                )
        return value

    deployment_id: str = Field(
        "orgplane",
        description="Value of the `orgplane.managed-by` label on every backend object: two "
        "deployments sharing a Docker engine or cluster never touch each other's objects.",
    )
    reconcile_interval: float = Field(2.0, description="Seconds between reconciler passes.")
    reconciler_enabled: bool = Field(
        True, description="Run the reconciler loop in this process (every replica may)."
    )
    lease_seconds: float = Field(
        30.0, description="How long a replica's claim on one org lasts without renewal."
    )
    start_timeout: float = Field(
        120.0, description="Seconds an instance may take to send its first heartbeat."
    )
    unhealthy_restart_after: float = Field(
        60.0, description="Seconds an instance may stay unhealthy before it is restarted."
    )
    orphan_grace_seconds: float = Field(
        300.0,
        description="Age after which backend objects labelled as ours with no org are removed.",
    )
    instance_control_plane_url: str = Field(
        "", description="URL org instances reach the control plane at; defaults to the public URL."
    )
    max_concurrent_provisioning: int = Field(
        4, description="Provisioning operations at once; more wait in a queue."
    )
    heartbeat_interval: float = Field(10.0, description="Seconds between org instance heartbeats.")
    heartbeat_transport: Literal["http", "redis"] = Field(
        "redis",
        description="How instances heartbeat after the first beat of a run: `redis` leaves each "
        "beat in the org's own Redis namespace, where one control-plane replica reads them in "
        "batches (needs `redis_url` and `redis_org_users`; otherwise `http` is used); `http` "
        "posts every beat.",
    )
    heartbeat_poll_seconds: float = Field(
        2.0,
        gt=0,
        description="Seconds between batch reads of the heartbeats left in Redis (at most half "
        "the heartbeat interval is used).",
    )
    warm_pool_size: int = Field(
        0,
        ge=0,
        description="Pre-started, unassigned instances kept per backend; a new org claims one "
        "and is ready in about a second. 0 turns the warm pool off.",
    )
    hibernate_after: float = Field(
        0.0,
        description="Seconds without requests after which a running org is hibernated (instance "
        "stopped, data kept) until its next request wakes it; 0 turns hibernation off.",
    )


class BackendSettings(Group):
    """Options of the docker and kubernetes provisioners (``ProvisionerOptions`` fields)."""

    docker_network: str = Field(
        "", description="Docker network org containers join; empty means the default bridge."
    )
    docker_publish_ports: bool = Field(
        False, description="Publish each org container's port on a free 127.0.0.1 port."
    )
    docker_health_interval: float = Field(
        0.0,
        ge=0,
        description="Seconds between the engine's health checks of org containers (the image's "
        "HEALTHCHECK); 0 turns them off: an instance's heartbeats are its health, and each "
        "check cost the engine and the container 0.16 to 0.33 CPU-second (docs/performance.md).",
    )
    kubernetes_namespace_mode: Literal["shared", "per-org"] = Field(
        "shared",
        description="`shared`: all orgs in one namespace; `per-org`: a namespace per org with a "
        "NetworkPolicy and a ResourceQuota.",
    )
    kubernetes_namespace: str = Field("orgplane", description="Namespace of orgs in shared mode.")
    kubernetes_ingress: Literal["ingressroute", "ingress", "none"] = Field(
        "ingressroute", description="Route objects made per org: Traefik IngressRoute or Ingress."
    )
    kubernetes_ingress_class: str = Field("traefik", description="IngressClass of Ingresses.")
    kubernetes_ingress_namespace: str = Field(
        "traefik", description="Namespace of the ingress controller (per-org NetworkPolicy)."
    )
    kubernetes_control_plane_namespace: str = Field(
        "orgplane", description="Namespace of the control plane (per-org NetworkPolicy egress)."
    )
    kubernetes_control_plane_port: int = Field(
        8080, description="Port of the control plane (per-org NetworkPolicy egress)."
    )
    kubernetes_redis_namespace: str = Field(
        "orgplane", description="Namespace of Redis (per-org NetworkPolicy egress)."
    )
    kubernetes_redis_port: int = Field(6379, description="Port of Redis (NetworkPolicy egress).")
    kubernetes_storage_class: str = Field(
        "", description="StorageClass of org data volumes; empty means the cluster default."
    )
