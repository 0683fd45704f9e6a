"""Validating wire bodies against the contract: its TypedDicts, and its JSON Schemas when there.

The TypedDicts of ``orgplane_wire/contract.py`` are checked with pydantic, strictly and with no
key they do not name (as the JSON Schemas say, ``additionalProperties: false``). Pydantic reads
only ``typing_extensions.TypedDict`` on Python 3.11 and the contract module imports nothing but
the standard library, so each TypedDict (and every TypedDict inside it) is rebuilt as a
``typing_extensions`` one with the same keys, types and required keys.

Where the checked-in schemas (``docs/contract/v1/*.schema.json``, generated from the same
TypedDicts) sit beside the kit, as in a checkout of the repository, a body is validated against
its schema as well (``jsonschema``, when installed).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any, NotRequired, Required, get_args, get_origin, get_type_hints, is_typeddict

import typing_extensions
from pydantic import ConfigDict, TypeAdapter, ValidationError

#: Where a checkout keeps the contract's JSON Schemas.
SCHEMA_DIR = Path(__file__).resolve().parents[1] / "docs" / "contract" / "v1"


def _rebuilt(tp: Any) -> Any:
    if is_typeddict(tp):
        return _typed_dict(tp)
    origin, args = get_origin(tp), get_args(tp)
    if origin is None or not args:
        return tp
    if origin in (list, dict):
        return origin[tuple(_rebuilt(a) for a in args)]
    return tp


@cache
def _typed_dict(td: Any) -> Any:
    # ``__optional_keys__`` misses ``NotRequired`` in a module with postponed annotations
    # (3.11 reads the strings), so the markers are read from the resolved hints.
    fields: dict[str, Any] = {}
    for name, tp in get_type_hints(td, include_extras=True).items():
        marker = get_origin(tp)
        inner = _rebuilt(get_args(tp)[0] if marker in (NotRequired, Required) else tp)
        optional = marker is NotRequired or (not td.__total__ and marker is not Required)
        fields[name] = typing_extensions.NotRequired[inner] if optional else inner
    rebuilt = typing_extensions.TypedDict(td.__name__, fields)  # type: ignore[misc]
    rebuilt.__pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[attr-defined]
    return rebuilt


@cache
def adapter(td: Any) -> TypeAdapter[Any]:
    """A strict pydantic adapter of the contract TypedDict ``td``."""
    return TypeAdapter(_typed_dict(td))


def problems(td: Any, value: Any, *, schema: str = "") -> str:
    """Why ``value`` is not a ``td`` ('' when it is): the first error, with its location; then
    against the JSON Schema file ``schema`` in :data:`SCHEMA_DIR`, when it is there."""
    try:
        adapter(td).validate_python(value, strict=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        return f"{'.'.join(map(str, first['loc'])) or 'body'}: {first['msg']}"
    validator = _schema_validator(schema) if schema else None
    if validator is not None:
        error = next(iter(validator.iter_errors(value)), None)
        if error is not None:
            where = ".".join(map(str, error.absolute_path)) or "body"
            return f"{where}: {error.message} ({schema})"
    return ""


def schema_in_use(schema: str) -> bool:
    """Whether bodies are checked against the JSON Schema file ``schema`` too."""
    return _schema_validator(schema) is not None


@cache
def _schema_validator(schema: str) -> Any:
    path = SCHEMA_DIR / schema
    try:
        from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
    except ImportError:
        return None
    if not path.is_file():
        return None
    return Draft202012Validator(json.loads(path.read_text()))
