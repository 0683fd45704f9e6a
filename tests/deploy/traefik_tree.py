"""Traefik's flat configuration forms (CLI flags, Docker labels) as the YAML tree they stand for.

Traefik reads ``--providers.docker.exposedByDefault=false`` and the label
``traefik.http.routers.x.rule`` as paths into the same tree its YAML files hold, matching names
case-insensitively and converting values to the type of the field. Doing the same here lets the
tests validate compose's flags and labels against Traefik's published JSON schemas, so a
misspelt option fails a test instead of being ignored by Traefik at run time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tests.support.schemas import load_schema

STATIC_SCHEMA = "traefik-v3.json"
DYNAMIC_SCHEMA = "traefik-v3-file-provider.json"


def _resolve(root: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        pointer = node["$ref"].removeprefix("#/").split("/")
        target: Any = root
        for part in pointer:
            target = target[part]
        node = target
    return node


def _alternatives(root: dict[str, Any], node: dict[str, Any]) -> list[dict[str, Any]]:
    node = _resolve(root, node)
    found = [node]
    for keyword in ("allOf", "anyOf", "oneOf"):
        for option in node.get(keyword, []):
            found += _alternatives(root, option)
    return found


def _child(root: dict[str, Any], node: dict[str, Any], key: str) -> tuple[str, dict[str, Any]]:
    """The schema's own spelling of ``key`` under ``node``, and the child's schema."""
    for option in _alternatives(root, node):
        for name, child in option.get("properties", {}).items():
            if name.lower() == key.lower():
                return name, child
    for option in _alternatives(root, node):
        extra = option.get("additionalProperties")
        if isinstance(extra, dict):
            return key, extra
    return key, {}  # unknown: kept as written, for the schema to refuse


def _types(root: dict[str, Any], node: dict[str, Any]) -> set[str]:
    kinds: set[str] = set()
    for option in _alternatives(root, node):
        kind = option.get("type")
        kinds |= set(kind) if isinstance(kind, list) else {kind} if kind else set()
    return kinds


def _value(root: dict[str, Any], node: dict[str, Any], raw: str) -> Any:
    kinds = _types(root, node)
    if "object" in kinds and raw.lower() == "true":
        return {}  # `--ping=true` turns a section on with its defaults
    if "boolean" in kinds and raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    if "integer" in kinds and raw.lstrip("-").isdigit():
        return int(raw)
    if "array" in kinds:
        return [item.strip() for item in raw.split(",")]
    return raw


def tree(flat: Iterable[tuple[str, str]], schema: dict[str, Any]) -> dict[str, Any]:
    """Nest dotted ``(path, value)`` pairs the way Traefik does, typed by ``schema``."""
    result: dict[str, Any] = {}
    for path, raw in flat:
        node, here = schema, result
        parts = path.split(".")
        for part in parts[:-1]:
            name, node = _child(schema, node, part)
            here = here.setdefault(name, {})
        name, node = _child(schema, node, parts[-1])
        value = _value(schema, node, raw)
        if isinstance(value, dict) and isinstance(here.get(name), dict):
            continue  # the section has options already
        here[name] = value
    return result


def static_configuration(flags: Iterable[str]) -> dict[str, Any]:
    """The static configuration Traefik builds from ``--a.b=c`` command-line flags."""
    pairs = []
    for flag in flags:
        assert flag.startswith("--"), f"not a flag: {flag}"
        path, equals, raw = flag[2:].partition("=")
        pairs.append((path, raw if equals else "true"))
    return tree(pairs, load_schema(STATIC_SCHEMA))


def dynamic_configuration(
    labels: Mapping[str, str], *, container: str = "container"
) -> dict[str, Any]:
    """The dynamic configuration Traefik's Docker provider reads from container labels.

    ``traefik.enable`` and ``traefik.docker.*`` steer the provider and are not part of it. The
    Docker-only ``loadbalancer.server.port``/``.scheme`` become the server URL the provider
    builds from the container's address.
    """
    pairs: list[tuple[str, str]] = []
    servers: dict[str, dict[str, str]] = {}
    for key, value in labels.items():
        if not key.startswith("traefik.") or key == "traefik.enable":
            continue
        if key.startswith("traefik.docker."):
            continue
        path = key.removeprefix("traefik.")
        service, marker, option = path.lower().rpartition(".loadbalancer.server.")
        if marker and option in ("port", "scheme"):
            servers.setdefault(path[: len(service)], {})[option] = value
            continue
        pairs.append((path, value))
    configuration = tree(pairs, load_schema(DYNAMIC_SCHEMA))
    for service, server in servers.items():
        url = f"{server.get('scheme', 'http')}://{container}:{server.get('port', '80')}"
        balancer = _nested(configuration, [*service.split("."), "loadBalancer"])
        balancer["servers"] = [{"url": url}]
    return configuration


def _nested(root: dict[str, Any], path: list[str]) -> dict[str, Any]:
    for part in path:
        root = root.setdefault(part, {})
    return root
