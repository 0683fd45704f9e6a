"""Validation of generated routes against Traefik's and Kubernetes' published schemas.

Docker labels are checked by folding them onto the dynamic-configuration tree, as Traefik does:
``traefik.http.routers.X.rule`` is ``http.routers.X.rule``; label keys are case-insensitive and
are matched against the schema's property names; comma lists become arrays; ``tls=true`` is an
empty TLS section; the Docker-only ``loadbalancer.server.port`` becomes a server URL.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import jsonschema
import kubernetes_validate

from tests.support.schemas import crd_schema, load_schema

KUBERNETES_VERSION = "1.31"


@cache
def dynamic_schema() -> dict[str, Any]:
    schema: dict[str, Any] = load_schema("traefik-v3-file-provider.json")
    return schema


@cache
def ingressroute_schema() -> dict[str, Any]:
    return crd_schema("traefik.io_ingressroutes.yaml", "v1alpha1")


def validate_dynamic(config: dict[str, Any]) -> None:
    """Raise on any schema error of a dynamic configuration (all errors, not the first)."""
    validator = jsonschema.Draft7Validator(dynamic_schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors]


def validate_ingressroute(obj: dict[str, Any]) -> None:
    """Raise on any error of an IngressRoute against the CRD's openAPIV3Schema."""
    assert obj["apiVersion"] == "traefik.io/v1alpha1"
    assert obj["kind"] == "IngressRoute"
    validator = jsonschema.Draft7Validator(ingressroute_schema())
    errors = list(validator.iter_errors(obj))
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors]


def validate_kubernetes(obj: dict[str, Any]) -> None:
    """Validate a core object with kubernetes-validate (strict: unknown fields fail)."""
    kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = dynamic_schema()["definitions"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _properties(schema: dict[str, Any]) -> dict[str, Any]:
    schema = _resolve(schema)
    props = dict(schema.get("properties", {}))
    for option in schema.get("oneOf", []):
        props.update(option.get("properties", {}))
    return props


def _child(schema: dict[str, Any], key: str) -> tuple[str, dict[str, Any]]:
    schema = _resolve(schema)
    props = _properties(schema)
    for name, sub in props.items():
        if name.lower() == key.lower():
            return name, sub
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        return key, extra
    raise AssertionError(f"label key {key!r} is not in the schema (have {sorted(props)})")


def _value(schema: dict[str, Any], raw: str) -> Any:
    schema = _resolve(schema)
    kind = schema.get("type")
    if kind == "array":
        return [part.strip() for part in raw.split(",")]
    if kind == "boolean":
        return raw == "true"
    if kind == "integer":
        return int(raw)
    if kind == "object":
        assert raw == "true", raw
        return {}
    return raw


def labels_to_dynamic(labels: dict[str, str], *, host: str = "container") -> dict[str, Any]:
    """Fold Traefik Docker labels into a dynamic-configuration tree (see the module doc)."""
    tree: dict[str, Any] = {}
    for key, raw in labels.items():
        if not key.startswith("traefik.") or key in ("traefik.enable", "traefik.docker.network"):
            continue
        parts = key.split(".")[1:]
        lower = [p.lower() for p in parts]
        if lower[-3:] == ["loadbalancer", "server", "port"]:
            parts, raw = [*parts[:-2], "servers"], f"http://{host}:{int(raw)}"
        node, schema = tree, dynamic_schema()
        for part in parts[:-1]:
            name, schema = _child(schema, part)
            child = node.get(name)
            if not isinstance(child, dict):
                child = node[name] = {}
            node = child
        name, schema = _child(schema, parts[-1])
        value = [{"url": raw}] if name == "servers" else _value(schema, raw)
        if value == {} and isinstance(node.get(name), dict):
            continue  # ``tls=true`` beside ``tls.certresolver=...``
        node[name] = value
    return tree


@cache
def static_schema() -> dict[str, Any]:
    schema: dict[str, Any] = load_schema("traefik-v3.json")
    return schema


def validate_static(config: dict[str, Any]) -> None:
    """Raise on any schema error of a Traefik static configuration."""
    errors = list(jsonschema.Draft7Validator(static_schema()).iter_errors(config))
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors]
