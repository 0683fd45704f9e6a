"""The Traefik configuration shown in docs/routing.md is valid Traefik configuration."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tests.routing.schemas import validate_dynamic, validate_static

DOC = Path(__file__).resolve().parents[2] / "docs" / "routing.md"


def yaml_blocks(kind: str) -> list[dict[str, object]]:
    """The ```yaml blocks of the doc whose first line says ``# traefik {kind} configuration``."""
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    return [yaml.safe_load(b) for b in blocks if b.startswith(f"# traefik {kind} configuration")]


def test_static_configuration_examples_validate() -> None:
    blocks = yaml_blocks("static")
    assert len(blocks) == 2
    for block in blocks:
        validate_static(block)


def test_dynamic_configuration_example_validates() -> None:
    (block,) = yaml_blocks("dynamic")
    validate_dynamic(block)
