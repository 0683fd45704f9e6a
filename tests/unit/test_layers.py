"""The control plane's layers (``[tool.importlinter]`` in pyproject.toml; docs/architecture.md,
"Layers of the control plane"): every import contract holds on this tree, and the layers and
handler contracts refuse what they are there to refuse. ``make lint`` runs ``lint-imports``;
this runs the same contracts under ``make test``, so CI fails on an upward import too."""

from __future__ import annotations

from copy import deepcopy
from pathlib import Path
from typing import Any

import grimp
import pytest
from importlinter import api
from importlinter.contracts.forbidden import ForbiddenContract
from importlinter.contracts.layers import LayersContract
from importlinter.contracts.protected import ProtectedContract
from importlinter.domain.contract import Contract

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
TYPES: dict[str, type[Contract]] = {
    "forbidden": ForbiddenContract,
    "layers": LayersContract,
    "protected": ProtectedContract,
}
LAYERS = "the control plane is layered: no package imports a layer above its own"
HANDLERS = "HTTP handler modules are the API layer: only the app and other handlers import them"


@pytest.fixture(scope="module")
def configuration() -> dict[str, Any]:
    return api.read_configuration(str(PYPROJECT))


@pytest.fixture(scope="module")
def graph(configuration: dict[str, Any]) -> grimp.ImportGraph:
    """The import graph of this tree, as ``lint-imports`` builds it (no cache)."""
    roots = configuration["session_options"]["root_packages"]
    return grimp.build_graph(*roots, cache_dir=None)


def contract(configuration: dict[str, Any], name: str) -> Contract:
    options = next(o for o in configuration["contracts_options"] if o["name"] == name)
    return TYPES[options["type"]](
        name=name,
        session_options=configuration["session_options"],
        contract_options=options,
    )


def kept(configuration: dict[str, Any], name: str, graph: grimp.ImportGraph) -> bool:
    return bool(contract(configuration, name).check(deepcopy(graph), verbose=False).kept)


def test_every_contract_holds(configuration: dict[str, Any], graph: grimp.ImportGraph) -> None:
    names = [o["name"] for o in configuration["contracts_options"]]
    assert LAYERS in names
    assert HANDLERS in names
    broken = [name for name in names if not kept(configuration, name, graph)]
    assert broken == [], f"broken contracts (run lint-imports for the imports): {broken}"


def test_an_upward_import_breaks_the_layers(
    configuration: dict[str, Any], graph: grimp.ImportGraph
) -> None:
    upward = deepcopy(graph)
    # features sits below orgs and the reconciler; importing the loop would be a cycle.
    upward.add_import(
        importer="control_plane.features.rules", imported="control_plane.reconciler.loop"
    )
    assert not kept(configuration, LAYERS, upward)


def test_a_service_importing_a_handler_breaks_the_handler_contract(
    configuration: dict[str, Any], graph: grimp.ImportGraph
) -> None:
    into_a_handler = deepcopy(graph)
    # Same package, so the layers allow it; through the handler orgs would reach capacity.
    into_a_handler.add_import(
        importer="control_plane.orgs.service", imported="control_plane.orgs.routes"
    )
    assert kept(configuration, LAYERS, into_a_handler)
    assert not kept(configuration, HANDLERS, into_a_handler)


def test_a_package_outside_the_layers_breaks_them(
    configuration: dict[str, Any], graph: grimp.ImportGraph
) -> None:
    unplaced = deepcopy(graph)
    unplaced.add_module("control_plane.newcomer")
    assert not kept(configuration, LAYERS, unplaced)
