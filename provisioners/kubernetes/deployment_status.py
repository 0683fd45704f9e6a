"""An org's :class:`InstanceStatus` read from its Deployment, as a pure function.

``running`` means the Deployment has a ready replica (the pod passed its ``/readyz`` readiness
probe); zero desired replicas is ``stopped``; a Deployment that gave up progressing or cannot
create its pod (a quota, a missing volume) is ``failed`` with the condition's message.
"""

from __future__ import annotations

from typing import Any

from provisioners.base import InstanceState, InstanceStatus, ProvisionerOptions
from provisioners.naming import INSTANCE_ID_LABEL, ORG_ID_LABEL, SPEC_HASH_LABEL

Obj = dict[str, Any]


def _failure(conditions: list[Obj]) -> str:
    for condition in conditions:
        kind, status = condition.get("type"), condition.get("status")
        if (kind == "ReplicaFailure" and status == "True") or (
            kind == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded"
        ):
            return str(condition.get("message") or condition.get("reason") or kind)[:300]
    return ""


def deployment_state(deployment: Obj) -> tuple[InstanceState, str]:
    """The state of an org's Deployment and why."""
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    if spec.get("replicas", 1) == 0:
        return "stopped", "scaled to zero"
    if (status.get("readyReplicas") or 0) >= 1:
        return "running", ""
    failure = _failure(status.get("conditions") or [])
    if failure:
        return "failed", failure
    if not status:
        return "creating", "waiting for the Deployment controller"
    return "starting", "waiting for a ready pod"


def deployment_status(
    deployment: Obj, *, options: ProvisionerOptions, extra_handle: Obj | None = None
) -> InstanceStatus:
    """The status of the org whose Deployment this is."""
    meta = deployment.get("metadata") or {}
    labels: dict[str, str] = dict(meta.get("labels") or {})
    name, namespace = meta.get("name", ""), meta.get("namespace", "")
    state, message = deployment_state(deployment)
    containers = (((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}).get(
        "containers"
    ) or [{}]
    endpoint = f"http://{name}.{namespace}.svc:{options.instance_port}" if name else ""
    return InstanceStatus(
        org_id=labels.get(ORG_ID_LABEL, ""),
        state=state,
        endpoint=endpoint if state in ("starting", "running") else "",
        handle={
            "namespace": namespace,
            "deployment": name,
            "service": name,
            **(extra_handle or {}),
        },
        message=message,
        image=str(containers[0].get("image", "")),
        instance_id=labels.get(INSTANCE_ID_LABEL, ""),
        fingerprint=str((meta.get("annotations") or {}).get(SPEC_HASH_LABEL, "")),
        labels=labels,
    )
