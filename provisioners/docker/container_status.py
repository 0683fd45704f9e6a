"""An org's :class:`InstanceStatus` read from its container's inspect data.

The engine's view (state, OOM kill, health) decides. Org containers have no health check by
default (``docker_health_interval``, :func:`provisioners.docker.container_spec.health_check`):
``running`` then means the engine runs the container, and the control plane waits for the
instance's first heartbeat. With a health check, a container whose first check has not run yet
(Docker 20.10 runs it only after a full interval) is asked ``/readyz`` directly and counts as
running as soon as it answers.
"""

from __future__ import annotations

from typing import Any

from docker.models.containers import Container

from provisioners.base import InstanceState, InstanceStatus, ProvisionerOptions
from provisioners.naming import INSTANCE_ID_LABEL, ORG_ID_LABEL, SPEC_HASH_LABEL
from provisioners.probe import answers_ready


def endpoint_of(attrs: dict[str, Any], *, options: ProvisionerOptions) -> str:
    """Where the control plane reaches the container: its published loopback port, or its
    name on the Docker network."""
    port_key = f"{options.instance_port}/tcp"
    if options.docker_publish_ports:
        bindings = (attrs.get("NetworkSettings") or {}).get("Ports") or {}
        for binding in bindings.get(port_key) or []:
            if binding.get("HostIp") in ("127.0.0.1", "0.0.0.0", "") and binding.get("HostPort"):  # noqa: S104
                return f"http://127.0.0.1:{binding['HostPort']}"
        return ""
    name = str(attrs.get("Name", "")).lstrip("/")
    return f"http://{name}:{options.instance_port}" if name else ""


def engine_state(attrs: dict[str, Any]) -> tuple[InstanceState, str]:
    """The state and explanation the engine's inspect data gives, before any probe."""
    state = attrs.get("State") or {}
    status = state.get("Status", "")
    health = (state.get("Health") or {}).get("Status", "")
    code = state.get("ExitCode", 0)
    if status == "created":
        return "creating", "container created, not started"
    if status == "running":
        if health == "unhealthy":
            log = (state.get("Health") or {}).get("Log") or [{}]
            output = str(log[-1].get("Output", "")).strip()[:200]
            return "failed", f"health check failing{': ' + output if output else ''}"
        if health == "starting":
            return "starting", "waiting for the health check"
        return "running", ""
    if status == "restarting":
        return "starting", f"restarting after exit code {code}"
    if status == "paused":
        return "stopped", "paused"
    if status == "exited":
        if state.get("OOMKilled"):
            return "failed", "killed: out of memory"
        error = str(state.get("Error", ""))[:200]
        if error:
            return "failed", f"could not run: {error}"
        # With the unless-stopped policy the engine restarts a container that exits by itself
        # ("restarting"), so one that stays exited was stopped: by us, or by hand.
        return "stopped", f"stopped (exit code {code})"
    return "failed", f"container is {status or 'in an unknown state'}"


async def status_of(container: Container, *, options: ProvisionerOptions) -> InstanceStatus:
    """The status of an org's container (probing ``/readyz`` while its health is pending)."""
    attrs: dict[str, Any] = container.attrs
    labels: dict[str, str] = dict(container.labels)
    state, message = engine_state(attrs)
    endpoint = endpoint_of(attrs, options=options) if state in ("starting", "running") else ""
    if state == "starting" and message.startswith("waiting") and await answers_ready(endpoint):
        state, message = "running", ""
    mounts = [m.get("Name") for m in attrs.get("Mounts") or [] if m.get("Type") == "volume"]
    return InstanceStatus(
        org_id=labels.get(ORG_ID_LABEL, ""),
        state=state,
        endpoint=endpoint,
        handle={
            "container_id": container.id,
            "name": container.name,
            "volumes": [m for m in mounts if m],
            "network": options.docker_network or "bridge",
        },
        message=message,
        image=str((attrs.get("Config") or {}).get("Image", "")),
        instance_id=labels.get(INSTANCE_ID_LABEL, ""),
        fingerprint=labels.get(SPEC_HASH_LABEL, ""),
        labels=labels,
    )


def settled(summary: dict[str, Any]) -> bool:
    """Whether a container's list entry (``GET /containers/json``) says all :func:`status_of`
    needs: running, with no health check pending or failing. Anything else is inspected."""
    status = str(summary.get("Status", ""))
    return summary.get("State") == "running" and not any(
        word in status for word in ("health: starting", "unhealthy")
    )


def inspect_attrs(summary: dict[str, Any]) -> dict[str, Any]:
    """The inspect-shaped attributes of a :func:`settled` container, from its list entry: what
    :func:`status_of` reads, without one ``inspect`` call per container."""
    ports: dict[str, list[dict[str, str]]] = {}
    for port in summary.get("Ports") or []:
        if port.get("PublicPort"):
            key = f"{port.get('PrivatePort')}/{port.get('Type', 'tcp')}"
            ports.setdefault(key, []).append(
                {"HostIp": str(port.get("IP", "")), "HostPort": str(port["PublicPort"])}
            )
    names = summary.get("Names") or [""]
    health = "healthy" if "(healthy)" in str(summary.get("Status", "")) else ""
    return {
        "Id": summary.get("Id", ""),
        "Name": names[0],
        "State": {"Status": "running", **({"Health": {"Status": health}} if health else {})},
        "NetworkSettings": {"Ports": ports},
        "Mounts": summary.get("Mounts") or [],
        "Config": {"Image": summary.get("Image", ""), "Labels": summary.get("Labels") or {}},
    }
