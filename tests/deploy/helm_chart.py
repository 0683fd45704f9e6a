"""Render charts/orgplane with the real helm binary and validate what comes out.

Rendering is cached per (values files, --set arguments): the tests read the same renders many
times and helm is the slow part. Callers get deep copies, so a test may change what it reads.
"""

from __future__ import annotations

import copy
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import kubernetes_validate.utils
import yaml

from tests.support.schemas import crd_schema as vendored_crd_schema
from tests.support.services import REPO, helm_binary, need

CHART = REPO / "charts" / "orgplane"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
DEFAULT_VALUES = CHART / "ci" / "default-values.yaml"
RELEASE = "op"
NAMESPACE = "orgplane"
KUBERNETES_VERSION = kubernetes_validate.utils.latest_version()
CRD_FILES = {
    ("traefik.io/v1alpha1", "IngressRoute"): "traefik.io_ingressroutes.yaml",
    ("traefik.io/v1alpha1", "Middleware"): "traefik.io_middlewares.yaml",
}

Manifest = dict[str, Any]


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    """Run helm (skipped, or failed under CI, when the binary is missing)."""
    binary = helm_binary()
    need("helm", binary is not None)
    assert binary is not None
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60, check=False)


def _template_args(
    values: tuple[Path, ...],
    sets: tuple[str, ...],
    kube_version: str | None = None,
    namespace: str = NAMESPACE,
) -> list[str]:
    args = ["template", RELEASE, str(CHART), "--namespace", namespace]
    if kube_version is not None:  # .Capabilities.KubeVersion (helm's own default otherwise)
        args += ["--kube-version", kube_version]
    for path in values:
        args += ["--values", str(path)]
    for assignment in sets:
        args += ["--set", assignment]
    return args


@cache
def _render(
    values: tuple[Path, ...], sets: tuple[str, ...], kube_version: str | None, namespace: str
) -> tuple[Manifest, ...]:
    result = helm(*_template_args(values, sets, kube_version, namespace))
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def render(
    *values: Path,
    sets: tuple[str, ...] = (),
    kube_version: str | None = None,
    namespace: str = NAMESPACE,
) -> list[Manifest]:
    """Every object `helm template` renders (hooks included), for the server version
    ``kube_version`` when given."""
    return copy.deepcopy(list(_render(tuple(values), sets, kube_version, namespace)))


def render_error(*values: Path, sets: tuple[str, ...] = (), kube_version: str | None = None) -> str:
    """helm's error output for values it must refuse (the render must fail)."""
    result = helm(*_template_args(tuple(values), sets, kube_version))
    assert result.returncode != 0, f"helm accepted {values} {sets}"
    return result.stderr


def of_kind(objects: list[Manifest], kind: str) -> list[Manifest]:
    """The objects of one kind."""
    return [obj for obj in objects if obj["kind"] == kind]


def only(objects: list[Manifest], kind: str) -> Manifest:
    """The single object of ``kind`` (fails when there are none or several)."""
    found = of_kind(objects, kind)
    assert len(found) == 1, f"expected one {kind}, got {[o['metadata']['name'] for o in found]}"
    return found[0]


def named(objects: list[Manifest], kind: str, name: str) -> Manifest:
    """The object of ``kind`` called ``name``."""
    for obj in of_kind(objects, kind):
        if obj["metadata"]["name"] == name:
            return obj
    raise LookupError(f"no {kind} {name}")


def _closed(schema: Any) -> Any:
    """The schema with unknown fields refused wherever fields are listed.

    The API server prunes unknown fields of a structural CRD without a word, so a misspelt
    field would vanish silently; refusing them here turns the typo into a test failure.
    """
    if isinstance(schema, dict):
        closed = {key: _closed(value) for key, value in schema.items()}
        if "properties" in schema and "additionalProperties" not in schema:
            closed["additionalProperties"] = False
        return closed
    if isinstance(schema, list):
        return [_closed(item) for item in schema]
    return schema


@cache
def crd_schema(api_version: str, kind: str) -> dict[str, Any]:
    """The (closed) openAPIV3Schema of a vendored Traefik CRD."""
    schema: dict[str, Any] = _closed(
        vendored_crd_schema(CRD_FILES[(api_version, kind)], api_version.split("/")[1])
    )
    return schema


def validate_object(obj: Manifest) -> None:
    """Validate against Kubernetes' own schema, or the Traefik CRD's (raises on an error)."""
    key = (obj["apiVersion"], obj["kind"])
    if key in CRD_FILES:
        jsonschema.validate(obj, crd_schema(*key))
    else:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
