"""Kubernetes test support: kmock's emulator with Namespaces, and schema checks of what was sent.

kmock 0.8 emulates namespaced objects and custom resources, but cannot parse the cluster-scoped
``/api/v1/namespaces`` path (it reads ``namespaces`` as the start of a namespaced path and fails
with a 500). :class:`NamespacedEmulator` answers exactly those paths from a table of its own, as
the API server would (409 on a second create, 404 when absent, equality label selectors), and
hands every other request to kmock.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

import aiohttp.web
import attrs
import jsonschema
import kmock
import kubernetes_validate
from kubernetes import client as k8s

from tests.support.schemas import crd_schema

#: The oldest Kubernetes the chart supports and the newest the validator bundles.
KUBERNETES_VERSIONS = ("1.31.0", kubernetes_validate.latest_version())
_NAMESPACE_PATH = re.compile(r"/api/v1/namespaces(?:/([^/]+))?")


def _status(code: int, reason: str) -> aiohttp.web.Response:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "code": code,
        "reason": reason,
        "message": reason,
    }
    return aiohttp.web.json_response(body, status=code)


def _matches(labels: dict[str, str], selector: str) -> bool:
    pairs = [term.split("=", 1) for term in selector.split(",") if term]
    return all(labels.get(key) == value for key, value in pairs)


@attrs.define(kw_only=True)
class NamespacedEmulator(kmock.KubernetesEmulator):
    """kmock's emulator plus cluster-scoped Namespaces (see the module docstring)."""

    namespaces: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    namespace_bodies: list[dict[str, Any]] = attrs.field(factory=list)

    async def __call__(self, raw_request: Any) -> aiohttp.web.StreamResponse:
        match = _NAMESPACE_PATH.fullmatch(raw_request.path)
        if match is None:
            return await super().__call__(raw_request)
        name, method = match.group(1), raw_request.method
        if name is None and method == "POST":
            body = json.loads(await raw_request.read())
            self.namespace_bodies.append(body)
            if body["metadata"]["name"] in self.namespaces:
                return _status(409, "AlreadyExists")
            body = {**body, "status": {"phase": "Active"}}
            self.namespaces[body["metadata"]["name"]] = body
            return aiohttp.web.json_response(body, status=201)
        if name is None and method == "GET":
            selector = raw_request.query.get("labelSelector", "")
            items = [
                ns
                for ns in self.namespaces.values()
                if _matches(ns["metadata"].get("labels", {}), selector)
            ]
            return aiohttp.web.json_response({"kind": "NamespaceList", "items": items})
        if name not in self.namespaces:
            return _status(404, "NotFound")
        if method == "GET":
            return aiohttp.web.json_response(self.namespaces[name])
        if method == "DELETE":
            return aiohttp.web.json_response(self.namespaces.pop(name))
        if method == "PATCH":  # a server-side apply: the sent metadata replaces ours
            body = json.loads(await raw_request.read())
            self.namespace_bodies.append(body)
            live = self.namespaces[name]
            live["metadata"] = {**live["metadata"], **body.get("metadata", {})}
            return aiohttp.web.json_response(live)
        return _status(405, "MethodNotAllowed")


def api_client(server: kmock.RawHandler) -> k8s.ApiClient:
    """A real Kubernetes client pointed at the emulator."""
    configuration = k8s.Configuration()
    configuration.host = str(server.url).rstrip("/")
    return k8s.ApiClient(configuration)


@cache
def _ingressroute_schema() -> dict[str, Any]:
    return crd_schema("traefik.io_ingressroutes.yaml", "v1alpha1")


def validate_object(obj: dict[str, Any]) -> None:
    """Raise unless ``obj`` is valid: Kubernetes' schemas (strict: unknown fields fail) for
    built-in kinds, the CRD's openAPIV3Schema for IngressRoutes."""
    if obj["apiVersion"] == "traefik.io/v1alpha1":
        assert obj["kind"] == "IngressRoute"
        jsonschema.Draft7Validator(_ingressroute_schema()).validate(obj)
        return
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(obj, version, strict=True)


def sent_objects(server: kmock.RawHandler) -> list[dict[str, Any]]:
    """Every whole object the provisioner sent: creates and server-side applies (merge patches
    of single fields, as ``stop`` sends, are partial by design and left out)."""
    sent = []
    for request in server:
        content_type = request.headers.get("Content-Type", "")
        whole = request.method.name == "POST" or "apply-patch" in content_type
        if request.method.name in ("POST", "PATCH") and whole and isinstance(request.data, dict):
            sent.append(request.data)
    if isinstance(server, NamespacedEmulator):
        sent += server.namespace_bodies
    return sent
