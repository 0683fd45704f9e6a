"""What ``per-org`` namespace mode adds around an org: its NetworkPolicy and ResourceQuota.

The NetworkPolicy selects every pod of the org's namespace. Ingress: only from the ingress
controller's namespace, only to the instance port (a warm-pool spare, which holds no org data
yet, also from the control plane's namespace, which probes it and posts its assignment; the
org's own policy, applied when it claims the spare, takes that away). Egress: only to the
control plane (its namespace and port), Redis (its namespace and port) and cluster DNS.
Everything else, including every other org, is unreachable both ways.

The ResourceQuota caps the namespace at what the plan gives one instance: its CPU and memory,
one data volume of its size, no LoadBalancer or NodePort services.
"""

from __future__ import annotations

from typing import Any

from provisioners.base import InstanceSpec
from provisioners.base import ProvisionerOptions as Options
from provisioners.kubernetes.objects import Obj, is_spare, object_labels, object_name
from provisioners.kubernetes.objects import namespace_of as _namespace_of

_NAMESPACE_NAME = "kubernetes.io/metadata.name"


def _in_namespace(name: str, pods: dict[str, str] | None = None) -> dict[str, Any]:
    peer: dict[str, Any] = {"namespaceSelector": {"matchLabels": {_NAMESPACE_NAME: name}}}
    if pods:
        peer["podSelector"] = {"matchLabels": pods}
    return peer


def network_policy(spec: InstanceSpec, *, options: Options) -> Obj:
    """The org namespace's NetworkPolicy (see the module docstring)."""
    tcp = "TCP"
    dns = _in_namespace("kube-system", {"k8s-app": "kube-dns"})
    callers = [_in_namespace(options.kubernetes_ingress_namespace)]
    if is_spare(spec) and (
        options.kubernetes_control_plane_namespace != options.kubernetes_ingress_namespace
    ):
        callers.append(_in_namespace(options.kubernetes_control_plane_namespace))
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": object_name(spec),
            "namespace": _namespace_of(spec, options=options),
            "labels": object_labels(spec, options=options),
        },
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [
                {
                    "from": callers,
                    "ports": [{"port": options.instance_port, "protocol": tcp}],
                }
            ],
            "egress": [
                {
                    "to": [_in_namespace(options.kubernetes_control_plane_namespace)],
                    "ports": [{"port": options.kubernetes_control_plane_port, "protocol": tcp}],
                },
                {
                    "to": [_in_namespace(options.kubernetes_redis_namespace)],
                    "ports": [{"port": options.kubernetes_redis_port, "protocol": tcp}],
                },
                {
                    "to": [dns],
                    "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": tcp}],
                },
            ],
        },
    }


def resource_quota(spec: InstanceSpec, *, options: Options) -> Obj:
    """The org namespace's ResourceQuota: one instance's worth of the plan."""
    cpu = f"{max(1, round(spec.resources.cpu * 1000))}m"
    memory = f"{spec.resources.memory_mb}Mi"
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {
            "name": object_name(spec),
            "namespace": _namespace_of(spec, options=options),
            "labels": object_labels(spec, options=options),
        },
        "spec": {
            "hard": {
                "requests.cpu": cpu,
                "limits.cpu": cpu,
                "requests.memory": memory,
                "limits.memory": memory,
                "requests.storage": f"{spec.resources.storage_mb}Mi",
                "persistentvolumeclaims": "1",
                "pods": "1",
                "services": "1",
                "services.loadbalancers": "0",
                "services.nodeports": "0",
            }
        },
    }
