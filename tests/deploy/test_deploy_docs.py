"""The deployment guides describe every value and variable the files actually have."""

from __future__ import annotations

import yaml

from tests.deploy.compose_file import read_env_file
from tests.support.services import REPO

CHART = REPO / "charts" / "orgplane"
KUBERNETES_DOC = REPO / "docs" / "deploy-kubernetes.md"
COMPOSE_DOC = REPO / "docs" / "deploy-compose.md"


def test_every_chart_value_is_in_the_kubernetes_guide() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    doc = KUBERNETES_DOC.read_text()
    names = [key for key in values if key != "global"]
    for group in ("secrets", "provisioner", "admin"):
        names += [f"{group}.{key}" for key in values[group]]
    names += [f"provisioner.kubernetes.{key}" for key in values["provisioner"]["kubernetes"]]
    # A value is described in its own cell (`name`) or through its keys (`name.key`).
    missing = [name for name in names if f"`{name}`" not in doc and f"`{name}." not in doc]
    assert missing == []


def test_every_compose_variable_is_in_the_compose_guide() -> None:
    doc = COMPOSE_DOC.read_text()
    missing = [name for name in read_env_file() if f"`{name}`" not in doc]
    assert missing == []


def test_the_guides_cover_what_the_issue_asks_for() -> None:
    kubernetes = KUBERNETES_DOC.read_text()
    for heading in (
        "## Values",
        "## RBAC",
        "## Scaling the control plane",
        "## PostgreSQL",
        "## Redis",
        "## Upgrades",
        "## Backups of the control-plane database",
    ):
        assert heading in kubernetes
    compose = COMPOSE_DOC.read_text()
    for heading in ("## TLS", "## The Docker socket", "## Backups of the control-plane database"):
        assert heading in compose
    assert "docker-socket-proxy" in compose
