"""compose/compose.yaml as Compose reads it: YAML, then ``${VAR}`` interpolation, then overrides.

The real ``docker-compose config`` is the authority and a test runs it when it is installed;
this model lets the schema and consistency tests run everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tests.support.services import REPO

COMPOSE_DIR = REPO / "compose"
COMPOSE_FILE = COMPOSE_DIR / "compose.yaml"
TLS_FILE = COMPOSE_DIR / "compose.tls.yaml"
ENV_EXAMPLE = COMPOSE_DIR / ".env.example"

# Values for the variables .env.example leaves for the user to fill in.
FILLED_IN = {
    "ORGPLANE_SECRET_KEY": "test-secret-key-0123456789abcdef0123456789abcdef",
    "REDIS_PASSWORD": "0123456789abcdef",
    "ORGPLANE_ROUTING_TOKEN": "routing-token-0123456789abcdef",
    "DOCKER_GID": "117",
}

_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


class MissingVariable(Exception):
    """A ``${VAR:?message}`` whose variable is unset or empty."""


def read_env_file(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    """``NAME=value`` lines of an env file (comments and blank lines skipped)."""
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            env[name.strip()] = value.strip()
    return env


def example_env() -> dict[str, str]:
    """.env.example with the REQUIRED values filled in."""
    return {**read_env_file(), **FILLED_IN}


def variables(text: str) -> dict[str, str | None]:
    """Each interpolated variable and its operator (``:-``, ``:?``, ... or None)."""
    found: dict[str, str | None] = {}
    for match in _VARIABLE.finditer(text):
        name = match["braced"] or match["bare"]
        if name:
            found[name] = match["op"]
    return found


def _substitute(text: str, env: Mapping[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["bare"]
        value, op, arg = env.get(name), match["op"], match["arg"] or ""
        unset = value is None or (op is not None and op.startswith(":") and value == "")
        if op and op.endswith("-"):
            return arg if unset else str(value)
        if op and op.endswith("?") and unset:
            raise MissingVariable(f"{name}: {arg}")
        return value or ""

    return _VARIABLE.sub(one, text)


def interpolate(node: Any, env: Mapping[str, str]) -> Any:
    """``node`` with every string interpolated the way Compose does."""
    if isinstance(node, dict):
        return {key: interpolate(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate(item, env) for item in node]
    if isinstance(node, str):
        return _substitute(node, env)
    return node


def _merge(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = _merge(base[key], value) if key in base else value
        return merged
    return override


def load(*files: Path, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The project the files describe, interpolated with ``env`` (default: the example)."""
    env = example_env() if env is None else env
    project: dict[str, Any] = {}
    for path in files or (COMPOSE_FILE,):
        project = _merge(project, interpolate(yaml.safe_load(path.read_text()), env))
    return project


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a mapping, whichever form the file uses."""
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(item.partition("=")[::2] for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}
