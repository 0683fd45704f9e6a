"""JSON Schemas (draft 2020-12) of the contract's documents, generated from the TypedDicts of
``orgplane_wire/contract.py`` by msgspec (``orgplane contract schemas``) and checked in under
``docs/contract/v{CONTRACT_VERSION}/``, where SDKs and the conformance kit read them.

The TypedDicts are open (a reader ignores keys it does not know), except where the control
plane refuses unknown keys: a heartbeat body and its usage counters are validated with
``forbid_unknown_fields`` (:class:`control_plane.instances.heartbeat.HeartbeatIn`), so their
schemas say ``additionalProperties: false``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Final

import msgspec

from orgplane_wire import contract

DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
#: File stem -> the TypedDict it describes.
DOCUMENTS: Final[dict[str, Any]] = {
    "heartbeat-body": contract.HeartbeatBody,
    "heartbeat-answer": contract.HeartbeatAnswer,
    "org-token-claims": contract.OrgTokenClaims,
    "pool-assignment": contract.PoolAssignment,
}
#: Documents the control plane refuses with keys it does not know.
CLOSED: Final = frozenset({"HeartbeatBody", "UsageCounters"})
_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")


def version_dir(out: Path) -> Path:
    """Where the current version's schemas go under ``out``."""
    return out / f"v{contract.CONTRACT_VERSION}"


def _clean(text: str) -> str:
    """A docstring without Sphinx roles (``:data:`X``` -> ```X```)."""
    return _ROLE.sub(r"`\1`", text)


def schema_of(stem: str) -> dict[str, Any]:
    """The schema of one document: its type at the top, the types it uses under ``$defs``."""
    generated = msgspec.json.schema(DOCUMENTS[stem])
    defs: dict[str, Any] = generated["$defs"]
    name = generated["$ref"].rsplit("/", 1)[-1]
    for title, definition in defs.items():
        if "description" in definition:
            definition["description"] = _clean(definition["description"])
        if title in CLOSED:
            definition["additionalProperties"] = False
    top = defs.pop(name)
    schema: dict[str, Any] = {
        "$schema": DIALECT,
        "$id": f"{stem}.schema.json",
        "x-contract-version": contract.CONTRACT_VERSION,
        **top,
    }
    if defs:
        schema["$defs"] = dict(sorted(defs.items()))
    return schema


def rendered() -> dict[str, str]:
    """File name -> file text of every schema of the current version."""
    return {
        f"{stem}.schema.json": json.dumps(schema_of(stem), indent=2) + "\n" for stem in DOCUMENTS
    }


def write(out: Path) -> list[Path]:
    """Write every schema under ``out``; the files written."""
    target = version_dir(out)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in rendered().items():
        path = target / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def drift(out: Path) -> list[str]:
    """What differs between the schemas under ``out`` and the code (empty: none)."""
    target = version_dir(out)
    expected = rendered()
    problems = []
    for name, text in expected.items():
        path = target / name
        if not path.is_file():
            problems.append(f"{path}: missing")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"{path}: differs from orgplane_wire/contract.py")
    if target.is_dir():
        problems.extend(
            f"{path}: no such document in the contract"
            for path in sorted(target.glob("*.schema.json"))
            if path.name not in expected
        )
    return problems
