"""One shape for every backend, so the contract suite runs unchanged against each.

A :class:`Harness` builds provisioners of one backend (a new object is what a control-plane
restart gives), counts the org's running instance objects the way that backend's engine sees them
(processes, containers, Deployments), and knows whether instances really run there (kmock does
not run pods: there, the harness plays the Deployment controller and marks a Deployment ready).
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import signal
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orgplane_wire.contract import Env
from provisioners.base import (
    InstanceSpec,
    InstanceStatus,
    Provisioner,
    ProvisionerOptions,
    Resources,
    instance_env,
)
from provisioners.naming import ORG_ID_LABEL
from tests.support.wait import WaitTimeout, eventually

INSTANCE_IMAGE = os.environ.get("ORGPLANE_TEST_INSTANCE_IMAGE", "orgplane-instance:dev")
#: What an instance asks of the one-node test cluster (2 CPUs: a plan's 0.5 would fit 4 pods).
CLUSTER_RESOURCES = Resources(cpu=0.25, memory_mb=256, storage_mb=256)
#: Every object a test makes carries this label with the run's id, and is removed by it.
TEST_RUN_LABEL = "orgplane.test-run"


def make_spec(
    *,
    run_id: str,
    org_id: str | None = None,
    slug: str = "acme",
    image: str = INSTANCE_IMAGE,
    hostnames: tuple[str, ...] = (),
    heartbeat_interval: float = 30.0,
    **changes: Any,
) -> InstanceSpec:
    """A complete spec for a new org (control plane unreachable: heartbeats just fail)."""
    org_id = org_id or uuid.uuid4().hex
    instance_id = uuid.uuid4().hex
    env = instance_env(
        org_id=org_id,
        slug=slug,
        instance_id=instance_id,
        control_plane_url="http://127.0.0.1:9",
        credential=secrets.token_urlsafe(24),
        hostnames=hostnames,
        heartbeat_interval=heartbeat_interval,
        limits={"max_sessions": 5},
    )
    spec = InstanceSpec(
        org_id=org_id,
        slug=slug,
        instance_id=instance_id,
        image=image,
        env=env,
        resources=Resources(cpu=0.5, memory_mb=256, storage_mb=256),
        hostnames=hostnames,
        labels={TEST_RUN_LABEL: run_id},
    )
    return dataclasses.replace(spec, **changes) if changes else spec


def make_spare_spec(*, run_id: str, image: str = INSTANCE_IMAGE) -> InstanceSpec:
    """A warm-pool spare's spec, as the pool manager builds it: a pre-chosen org id, pool mode
    (a pool secret, no org settings), slug ``spare-<8 hex>``."""
    org_id = uuid.uuid4().hex
    return dataclasses.replace(
        make_spec(run_id=run_id, org_id=org_id, image=image),
        slug=f"spare-{org_id[:8]}",
        instance_id=org_id,
        env={Env.POOL_SECRET: secrets.token_urlsafe(32), Env.ORG_ID: org_id},
        labels={TEST_RUN_LABEL: run_id, "orgplane.spare": "1"},
    )


@dataclass
class Harness:
    """A backend under test (see the module docstring)."""

    name: str
    options: ProvisionerOptions
    factory: Callable[[ProvisionerOptions], Provisioner]
    count_instances: Callable[[str], Awaitable[int]]
    runs_instances: bool
    mark_ready: Callable[[InstanceStatus], Awaitable[None]]
    made: list[Provisioner] = dataclasses.field(default_factory=list)
    #: The base URL the test reaches a running instance at (default: its endpoint).
    reach: Callable[[InstanceStatus], Awaitable[str]] | None = None
    #: Changes to every spec of this backend (a real cluster's smaller CPU requests).
    spec_changes: dict[str, Any] = dataclasses.field(default_factory=dict)

    def provisioner(self, **option_changes: Any) -> Provisioner:
        """A new provisioner object (as after a control-plane restart)."""
        made = self.factory(dataclasses.replace(self.options, **option_changes))
        self.made.append(made)
        return made

    def spec(self, **kwargs: Any) -> InstanceSpec:
        """A spec labelled with this run."""
        return make_spec(run_id=self.options.deployment_id, **{**self.spec_changes, **kwargs})

    async def url(self, status: InstanceStatus) -> str:
        """Where the test reaches the running instance ``status`` describes."""
        return await self.reach(status) if self.reach is not None else status.endpoint


async def wait_for_state(
    provisioner: Provisioner, org_id: str, states: set[str], *, seconds: float = 90
) -> InstanceStatus:
    """Poll ``status`` until its state is in ``states`` (bounded by ``seconds``)."""
    status: InstanceStatus | None = None

    async def reached() -> InstanceStatus | None:
        nonlocal status
        status = await provisioner.status(org_id=org_id)
        return status if status is not None and status.state in states else None

    try:
        return await eventually(
            reached, what=f"org {org_id} in {states}", timeout=seconds, interval=0.2
        )
    except WaitTimeout as exc:
        raise WaitTimeout(f"{exc}; its status: {status}") from None


def kill_local_leftovers(deployment_ids: list[str]) -> int:
    """Kill processes a failed test may have left (by their command-line marker)."""
    killed = 0
    prefixes = [f"orgplane_instance={dep}/".encode() for dep in deployment_ids]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(arg.startswith(prefix) for arg in argv for prefix in prefixes):
            try:
                os.killpg(int(entry.name), signal.SIGKILL)
                killed += 1
            except (ProcessLookupError, PermissionError):
                pass
    return killed


async def pod_url(core: Any, status: InstanceStatus, *, port: int = 8000) -> str:
    """``http://<pod IP>:<port>`` of the org's ready pod on a real cluster (the kubelet
    engine's bridge is routed from the host; the Service's name resolves only in-cluster)."""
    import asyncio

    selector = f"{ORG_ID_LABEL}={status.org_id}"

    async def ready_pod_ip() -> str | None:
        pods = await asyncio.to_thread(
            core.list_namespaced_pod, status.handle["namespace"], label_selector=selector
        )
        for pod in pods.items:
            ready = any(
                c.type == "Ready" and c.status == "True" for c in pod.status.conditions or ()
            )
            if ready and pod.status.pod_ip and pod.metadata.deletion_timestamp is None:
                return str(pod.status.pod_ip)
        return None

    ip = await eventually(ready_pod_ip, what=f"a ready pod of org {status.org_id}", timeout=60)
    return f"http://{ip}:{port}"
