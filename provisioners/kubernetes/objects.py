"""The Kubernetes objects of one org's instance, as pure functions returning plain dicts.

Per org: a Secret (instance credential, Redis URL; a spare's pool secret), a PersistentVolumeClaim
(data), a
single-replica Deployment with the Recreate strategy (SQLite on a ReadWriteOnce volume must never
have two writers), a ClusterIP Service, and an IngressRoute (``traefik.io/v1alpha1``) or Ingress
for the org's hostnames. In ``per-org`` namespace mode the org also gets its own Namespace (Pod
Security ``restricted``), a NetworkPolicy (ingress only from the ingress controller's namespace;
egress only to the control plane, Redis and DNS) and a ResourceQuota from its plan.

Every name derives from the org id alone (:func:`object_name`; the slug is in the
``app.kubernetes.io/instance`` label): what a warm-pool spare makes already carries the names of
the org that claims it, and a slug change renames nothing. Every object carries the ownership
labels and an ``orgplane.spec-hash`` annotation: the digest of the object itself, so the client
patches only what changed. No I/O here; ``client.py`` sends them.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Final

from orgplane_wire.contract import Env
from provisioners import traefik
from provisioners.base import BACKEND_ENV_NAMES, InstanceSpec
from provisioners.base import ProvisionerOptions as Options
from provisioners.naming import (
    INSTANCE_ID_LABEL,
    SPEC_HASH_LABEL,
    instance_name,
    ownership_labels,
    stable_name,
)

Obj = dict[str, Any]

DATA_PATH: Final = "/data"
UID: Final = 10001
#: Secret keys of the secret environment variables every instance has.
SECRET_KEYS: Final = {Env.INSTANCE_CREDENTIAL: "instance-credential", Env.REDIS_URL: "redis-url"}
#: Secret key of a warm-pool spare's pool secret (only a spare's Secret has it).
POOL_SECRET_KEY: Final = "pool-secret"
#: Pod template annotation that changes when the Secret does, so a new credential rolls the pod.
SECRET_HASH_ANNOTATION: Final = "orgplane.secret-hash"
APP_LABEL: Final = "app.kubernetes.io/name"


def digest(value: Any) -> str:
    """A short digest of a JSON-able value."""
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def object_name(spec: InstanceSpec) -> str:
    """The name of the org's Secret, Deployment, Service, route, policy and quota: from the org id
    alone, so a claimed spare's objects are already the org's."""
    return stable_name("orgplane", spec.org_id)


def is_spare(spec: InstanceSpec) -> bool:
    """Whether ``spec`` starts a warm-pool spare (pool mode: it waits for its assignment)."""
    return bool(spec.env.get(Env.POOL_SECRET))


def namespace_of(spec: InstanceSpec, *, options: Options) -> str:
    """The namespace of the org's objects: the shared one, or the org's own."""
    if options.kubernetes_namespace_mode == "per-org":
        return stable_name("orgplane-org", spec.org_id)
    return options.kubernetes_namespace


def selector_labels(spec: InstanceSpec, *, options: Options) -> dict[str, str]:
    """Labels that select the org's pods (immutable in a Deployment: no instance id here)."""
    owner = ownership_labels(org_id=spec.org_id, deployment_id=options.deployment_id)
    return {**owner, APP_LABEL: "orgplane-instance"}


def object_labels(spec: InstanceSpec, *, options: Options) -> dict[str, str]:
    """Labels of every object of the org."""
    return {
        **spec.labels,
        **selector_labels(spec, options=options),
        INSTANCE_ID_LABEL: spec.instance_id,
        "app.kubernetes.io/managed-by": "orgplane",
        "app.kubernetes.io/instance": instance_name(slug=spec.slug, org_id=spec.org_id),
    }


def _meta(name: str, spec: InstanceSpec, options: Options, namespace: str | None) -> Obj:
    meta: Obj = {"name": name, "labels": object_labels(spec, options=options)}
    if namespace is not None:
        meta["namespace"] = namespace
    return meta


def with_hash(obj: Obj) -> Obj:
    """``obj`` with its own digest in the ``orgplane.spec-hash`` annotation."""
    obj.setdefault("metadata", {}).setdefault("annotations", {}).pop(SPEC_HASH_LABEL, None)
    obj["metadata"]["annotations"][SPEC_HASH_LABEL] = digest(obj)
    return obj


def namespace(spec: InstanceSpec, *, options: Options) -> Obj:
    """The org's own Namespace (per-org mode), enforcing Pod Security ``restricted``."""
    meta = _meta(namespace_of(spec, options=options), spec, options, None)
    meta["labels"]["pod-security.kubernetes.io/enforce"] = "restricted"
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def secret(spec: InstanceSpec, *, options: Options) -> Obj:
    """The Secret holding the instance credential and Redis URL, and a spare's pool secret
    (values never logged)."""
    name = object_name(spec)
    data = {key: spec.env.get(env, "") for env, key in SECRET_KEYS.items()}
    if is_spare(spec):
        data[POOL_SECRET_KEY] = spec.env[Env.POOL_SECRET]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(name, spec, options, namespace_of(spec, options=options)),
        "type": "Opaque",
        "stringData": data,
    }


def persistent_volume_claim(spec: InstanceSpec, *, options: Options) -> Obj:
    """The org's data volume, ReadWriteOnce, sized by the plan."""
    pvc_spec: Obj = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": f"{spec.resources.storage_mb}Mi"}},
    }
    if options.kubernetes_storage_class:
        pvc_spec["storageClassName"] = options.kubernetes_storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _meta(spec.data_volume, spec, options, namespace_of(spec, options=options)),
        "spec": pvc_spec,
    }


def internal_hosts(spec: InstanceSpec, *, options: Options) -> list[str]:
    """The DNS names of the org's Service inside the cluster."""
    name, ns = object_name(spec), namespace_of(spec, options=options)
    return [name, f"{name}.{ns}", f"{name}.{ns}.svc", f"{name}.{ns}.svc.cluster.local"]


def _container_env(spec: InstanceSpec, options: Options, secret_name: str) -> list[Obj]:
    plain = {k: v for k, v in spec.plain_env().items() if k not in BACKEND_ENV_NAMES}
    plain |= {
        Env.DATA_DIR: DATA_PATH,
        Env.BIND_HOST: "0.0.0.0",  # noqa: S104 - inside the pod's network namespace
        Env.PORT: str(options.instance_port),
        Env.INTERNAL_HOSTS: ",".join(internal_hosts(spec, options=options)),
    }
    env: list[Obj] = [{"name": k, "value": v} for k, v in sorted(plain.items())]
    for name in sorted(SECRET_KEYS):
        ref = {"name": secret_name, "key": SECRET_KEYS[name]}
        env.append({"name": name, "valueFrom": {"secretKeyRef": ref}})
    if is_spare(spec):
        # Optional: the org's next apply updates the Secret (dropping the key) before the
        # Deployment, and a restart in between must still find its environment.
        optional: Obj = {"name": secret_name, "key": POOL_SECRET_KEY, "optional": True}
        env.append({"name": Env.POOL_SECRET, "valueFrom": {"secretKeyRef": optional}})
    return env


def _probe(path: str, *, period: int, failures: int) -> Obj:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def _container(spec: InstanceSpec, options: Options, secret_name: str) -> Obj:
    cpu, memory = f"{max(1, round(spec.resources.cpu * 1000))}m", f"{spec.resources.memory_mb}Mi"
    return {
        "name": "instance",
        "image": spec.image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": options.instance_port, "protocol": "TCP"}],
        "env": _container_env(spec, options, secret_name),
        "resources": {
            "requests": {"cpu": cpu, "memory": memory},
            "limits": {"cpu": cpu, "memory": memory},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "startupProbe": _probe("/healthz", period=1, failures=120),
        "livenessProbe": _probe("/healthz", period=10, failures=3),
        "readinessProbe": _probe("/readyz", period=5, failures=2),
        "volumeMounts": [
            {"name": "data", "mountPath": DATA_PATH},
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - a private emptyDir
        ],
    }


def deployment(spec: InstanceSpec, *, options: Options, replicas: int = 1) -> Obj:
    """The single-replica Deployment (Recreate: never two pods on one SQLite volume)."""
    name = object_name(spec)
    selector = selector_labels(spec, options=options)
    pod_meta = {
        "labels": {**selector, INSTANCE_ID_LABEL: spec.instance_id},
        "annotations": {
            SECRET_HASH_ANNOTATION: digest(secret(spec, options=options)["stringData"])
        },
    }
    pod_spec: Obj = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": UID,
            "runAsGroup": UID,
            "fsGroup": UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [_container(spec, options, name)],
        "volumes": [
            {"name": "data", "persistentVolumeClaim": {"claimName": spec.data_volume}},
            {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
        ],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(name, spec, options, namespace_of(spec, options=options)),
        "spec": {
            "replicas": replicas,
            "strategy": {"type": "Recreate"},
            "revisionHistoryLimit": 2,
            "selector": {"matchLabels": selector},
            "template": {"metadata": pod_meta, "spec": pod_spec},
        },
    }


def service(spec: InstanceSpec, *, options: Options) -> Obj:
    """The ClusterIP Service the control plane and the ingress reach the instance through."""
    name = object_name(spec)
    port = {"name": "http", "port": options.instance_port, "targetPort": "http", "protocol": "TCP"}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(name, spec, options, namespace_of(spec, options=options)),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(spec, options=options),
            "ports": [port],
        },
    }


def route(spec: InstanceSpec, *, options: Options) -> Obj | None:
    """The IngressRoute or Ingress for the org's hostnames (None without hostnames)."""
    if not spec.hostnames or options.kubernetes_ingress == "none":
        return None
    name = object_name(spec)
    common: Obj = {
        "name": name,
        "namespace": namespace_of(spec, options=options),
        "hostnames": spec.hostnames,
        "service_name": name,
        "port": options.instance_port,
        "entrypoints": options.entrypoints,
        "tls": options.tls,
        "cert_resolver": options.cert_resolver,
        "labels": object_labels(spec, options=options),
    }
    if options.kubernetes_ingress == "ingress":
        return traefik.ingress(**common, ingress_class=options.kubernetes_ingress_class)
    return traefik.ingressroute(**common)


def endpoint_of(spec: InstanceSpec, *, options: Options) -> str:
    """The instance's URL inside the cluster."""
    return f"http://{internal_hosts(spec, options=options)[2]}:{options.instance_port}"
