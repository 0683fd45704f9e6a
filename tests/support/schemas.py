"""The published schemas vendored under ``tests/schemas/`` (see its README for their sources)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import yaml

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"


@cache
def load_schema(name: str) -> Any:
    """A vendored schema file, parsed (JSON, or YAML for the CRDs); cached per process."""
    text = (SCHEMAS / name).read_text()
    return yaml.safe_load(text) if name.endswith((".yaml", ".yml")) else json.loads(text)


def crd_schema(name: str, version: str) -> dict[str, Any]:
    """The ``openAPIV3Schema`` that the vendored CRD file ``name`` serves for ``version``."""
    crd = load_schema(name)
    for served in crd["spec"]["versions"]:
        if served["name"] == version:
            schema: dict[str, Any] = served["schema"]["openAPIV3Schema"]
            return schema
    raise LookupError(f"{name} does not serve {version}")
