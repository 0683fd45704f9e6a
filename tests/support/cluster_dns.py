"""Service names of the test cluster, resolved in this process.

The test cluster (tests/support/kubecluster.py) has neither cluster DNS nor kube-proxy, and a
control plane run on the host by a test reaches an instance at the address the kubernetes
backend reports: ``http://<service>.<namespace>.svc:<port>``. :func:`services_resolved` stands
in for both, in this process only: while it is active, ``<service>.<namespace>.svc`` resolves to
the address of a ready pod behind the Service (its Endpoints, as kube-proxy would pick one; pod
addresses on the kubelet engine's bridge are routed from the host). Every other name resolves as
before. Each lookup asks the API server again: a redeployed org's new pod has a new address.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.support.kubecluster import Cluster


def _ready_pod_address(core: Any, host: str) -> str:
    service, namespace = host.split(".")[:2]
    from kubernetes.client.exceptions import ApiException

    try:
        endpoints = core.read_namespaced_endpoints(service, namespace)
    except ApiException as exc:
        raise socket.gaierror(socket.EAI_NONAME, f"{host}: {exc.status}") from None
    for subset in endpoints.subsets or ():
        for address in subset.addresses or ():
            return str(address.ip)
    raise socket.gaierror(socket.EAI_NONAME, f"{host}: no ready pod behind the Service")


@contextmanager
def services_resolved(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Resolve the cluster's ``*.svc`` names in this process (see the module docstring)."""
    from kubernetes import client as k8s

    api = cluster.api_client()
    core = k8s.CoreV1Api(api)
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, bytes):
            host = host.decode()
        if isinstance(host, str) and host.endswith(".svc") and host.count(".") == 2:
            host = _ready_pod_address(core, host)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    try:
        yield
    finally:
        monkeypatch.setattr(socket, "getaddrinfo", real)
        api.close()
