"""Blocking Kubernetes calls on plain dicts, with the provisioner's error rules.

The official client's typed APIs (and ``CustomObjectsApi`` for IngressRoutes) do the requests;
bodies go in as dicts (the client checks them against its models) and answers come back as dicts
(``_preload_content=False``). Here 404 means "absent" (``read`` answers None, ``delete`` answers
False, ``list`` of a kind the cluster does not serve answers []), 409 on create is
:class:`Conflict` for the caller to adopt, and every other failure becomes a retryable or
permanent :mod:`provisioners.errors` error whose message never quotes a Secret.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Final

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from provisioners.errors import PermanentProvisionerError, RetryableProvisionerError

Obj = dict[str, Any]
FIELD_MANAGER: Final = "orgplane"
TIMEOUT: Final = (5, 30)  # seconds to connect, to read
#: Seconds a followed pod log may stay silent before its read gives up (callers bound the
#: whole stream themselves).
FOLLOW_READ_TIMEOUT: Final = 3600.0


class Conflict(Exception):
    """409 on create: the object exists (another replica made it, or an earlier crash did)."""


@dataclass(frozen=True)
class Kind:
    """How the client reaches one kind of object."""

    api: type
    snake: str = ""  #: the typed API's name for it (``persistent_volume_claim``)
    namespaced: bool = True
    group: str = ""  #: custom resources only
    version: str = ""
    plural: str = ""


KINDS: Final = {
    "Namespace": Kind(k8s.CoreV1Api, "namespace", namespaced=False),
    "Secret": Kind(k8s.CoreV1Api, "secret"),
    "PersistentVolumeClaim": Kind(k8s.CoreV1Api, "persistent_volume_claim"),
    "ResourceQuota": Kind(k8s.CoreV1Api, "resource_quota"),
    "Service": Kind(k8s.CoreV1Api, "service"),
    "NetworkPolicy": Kind(k8s.NetworkingV1Api, "network_policy"),
    "Ingress": Kind(k8s.NetworkingV1Api, "ingress"),
    "Deployment": Kind(k8s.AppsV1Api, "deployment"),
    "Pod": Kind(k8s.CoreV1Api, "pod"),
    "IngressRoute": Kind(
        k8s.CustomObjectsApi, group="traefik.io", version="v1alpha1", plural="ingressroutes"
    ),
}


def load_api_client() -> k8s.ApiClient:
    """A client configured in-cluster (service account) first, else from the kubeconfig."""
    configuration = k8s.Configuration()
    try:
        k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except k8s_config.ConfigException:
        try:
            # KUBECONFIG read now: the client library reads it once, when it is imported.
            k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=os.environ.get("KUBECONFIG") or None,
                client_configuration=configuration,
            )
        except (k8s_config.ConfigException, OSError, TypeError) as exc:
            raise PermanentProvisionerError(
                "no Kubernetes configuration: not running in a cluster and no usable kubeconfig"
            ) from exc
    return k8s.ApiClient(configuration)


def _describe(exc: k8s.ApiException, kind: str) -> str:
    text = f"HTTP {exc.status} {exc.reason or ''}".strip()
    if kind == "Secret":  # an API error about a Secret may quote its data
        return text
    try:
        message = json.loads(exc.body or "{}").get("message", "")
    except (ValueError, AttributeError):
        message = ""
    return f"{text}: {str(message)[:300]}" if message else text


class KubeClient:
    """Create, read, patch, delete and list objects given as dicts (blocking calls)."""

    def __init__(self, api_client: k8s.ApiClient) -> None:
        self.api_client = api_client
        self._apis: dict[type, Any] = {}

    def _api(self, kind: str) -> tuple[Kind, Any]:
        spec = KINDS[kind]
        if spec.api not in self._apis:
            self._apis[spec.api] = spec.api(self.api_client)
        return spec, self._apis[spec.api]

    def _call(self, kind: str, verb: str, *args: Any, **kwargs: Any) -> Obj:
        """Call ``verb`` (create, read, patch, delete, list, list_all) for ``kind``."""
        spec, api = self._api(kind)
        kwargs |= {"_preload_content": False, "_request_timeout": TIMEOUT}
        if spec.plural:
            method, args = self._custom(verb, spec, api, args)
        elif verb == "list_all":
            method = getattr(api, f"list_{spec.snake}_for_all_namespaces")
        else:
            scope = "namespaced_" if spec.namespaced else ""
            method = getattr(api, f"{verb}_{scope}{spec.snake}")
        response = self._invoke(kind, verb, method, *args, **kwargs)
        body: Obj = json.loads(response.data or b"{}")
        return body

    @staticmethod
    def _invoke(kind: str, verb: str, method: Any, *args: Any, **kwargs: Any) -> Any:
        """``method(*args, **kwargs)`` under the error rules: 404 (and 409 on create) pass
        through as ``ApiException``; the rest become provisioner errors."""
        try:
            return method(*args, **kwargs)
        except k8s.ApiException as exc:
            if exc.status == 404 or (exc.status == 409 and verb == "create"):
                raise
            if exc.status in (0, 409, 429, None) or exc.status >= 500:  # 409: a race
                raise RetryableProvisionerError(
                    f"Kubernetes {verb} {kind}: {_describe(exc, kind)}"
                ) from exc
            raise PermanentProvisionerError(
                f"Kubernetes refused {verb} {kind}: {_describe(exc, kind)}"
            ) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise RetryableProvisionerError(f"Kubernetes API unreachable: {exc}") from exc

    @staticmethod
    def _custom(verb: str, spec: Kind, api: Any, args: tuple[Any, ...]) -> tuple[Any, Any]:
        """The CustomObjectsApi method for ``verb`` and its positional arguments."""
        gvp = (spec.group, spec.version)
        if verb == "list_all":
            return api.list_cluster_custom_object, (*gvp, spec.plural)
        if verb in ("create", "list"):  # args: namespace[, body]
            method = getattr(api, f"{verb}_namespaced_custom_object")
            return method, (*gvp, args[0], spec.plural, *args[1:])
        # read / patch / delete; args: name, namespace[, body]
        name, namespace, *rest = args
        method = getattr(api, f"{'get' if verb == 'read' else verb}_namespaced_custom_object")
        return method, (*gvp, namespace, spec.plural, name, *rest)

    @staticmethod
    def _where(kind: str, namespace: str | None) -> tuple[str, ...]:
        return (namespace,) if KINDS[kind].namespaced and namespace is not None else ()

    def create(self, obj: Obj) -> Obj:
        """Create ``obj``; raises :class:`Conflict` when it exists already."""
        kind, namespace = obj["kind"], obj["metadata"].get("namespace")
        try:
            return self._call(
                kind, "create", *self._where(kind, namespace), obj, field_manager=FIELD_MANAGER
            )
        except k8s.ApiException as exc:
            if exc.status == 409:
                raise Conflict(f"{kind} {obj['metadata']['name']} exists") from exc
            raise PermanentProvisionerError(  # 404: the namespace or the resource is missing
                f"cannot create {kind} {obj['metadata']['name']}: {_describe(exc, kind)}"
                + (" (is Traefik's IngressRoute CRD installed?)" if kind == "IngressRoute" else "")
            ) from exc

    def read(self, kind: str, name: str, namespace: str | None) -> Obj | None:
        """The object, or None when there is none."""
        try:
            return self._call(kind, "read", name, *self._where(kind, namespace))
        except k8s.ApiException:  # only 404 passes through _call
            return None

    def apply(self, obj: Obj) -> Obj:
        """Server-side apply ``obj`` (this field manager owns what it sets; forced)."""
        kind, meta = obj["kind"], obj["metadata"]
        try:
            return self._call(
                kind,
                "patch",
                meta["name"],
                *self._where(kind, meta.get("namespace")),
                obj,
                field_manager=FIELD_MANAGER,
                force=True,
                _content_type="application/apply-patch+yaml",
            )
        except k8s.ApiException as exc:
            raise RetryableProvisionerError(
                f"{kind} {meta['name']} vanished while updating"
            ) from exc

    def merge_patch(self, kind: str, name: str, namespace: str | None, patch: Obj) -> Obj | None:
        """JSON-merge ``patch`` into the object; None when there is no such object."""
        try:
            return self._call(
                kind,
                "patch",
                name,
                *self._where(kind, namespace),
                patch,
                _content_type="application/merge-patch+json",
            )
        except k8s.ApiException:
            return None

    def delete(
        self, kind: str, name: str, namespace: str | None, *, propagation: str = "Background"
    ) -> bool:
        """Delete the object; False when it was gone already. Dependents go in the background,
        or first with ``propagation="Foreground"`` (the object stays until they are gone)."""
        extra = {} if KINDS[kind].plural else {"propagation_policy": propagation}
        try:
            self._call(kind, "delete", name, *self._where(kind, namespace), **extra)
        except k8s.ApiException:
            return False
        return True

    def list(self, kind: str, namespace: str | None, *, selector: str) -> list[Obj]:
        """Objects of ``kind`` matching ``selector`` in ``namespace`` (None: every namespace)."""
        try:
            if namespace is None or not KINDS[kind].namespaced:
                verb = "list_all" if KINDS[kind].namespaced else "list"
                answer = self._call(kind, verb, label_selector=selector)
            else:
                answer = self._call(kind, "list", namespace, label_selector=selector)
        except k8s.ApiException:  # 404: the cluster does not serve the kind (a missing CRD)
            return []
        items: list[Obj] = answer.get("items") or []
        return items

    def pod_log(
        self,
        name: str,
        namespace: str,
        *,
        tail: int | None,
        since_seconds: int | None,
        follow: bool,
    ) -> Any:
        """The pod's log as an open ``urllib3`` response (read it with ``stream``, then
        ``release_conn``); None when the pod is gone. A followed log has no read timeout."""
        params: dict[str, Any] = {"follow": follow}
        if tail is not None:
            params["tail_lines"] = tail
        if since_seconds is not None:
            params["since_seconds"] = since_seconds
        _, api = self._api("Pod")
        timeout = (TIMEOUT[0], FOLLOW_READ_TIMEOUT) if follow else TIMEOUT
        try:
            return self._invoke(
                "Pod",
                "read log of",
                api.read_namespaced_pod_log,
                name,
                namespace,
                _preload_content=False,
                _request_timeout=timeout,
                **params,
            )
        except k8s.ApiException:  # only 404 passes through _invoke
            return None

    def close(self) -> None:
        """Close the underlying API client."""
        self.api_client.close()  # type: ignore[no-untyped-call]
