"""Validating wire bodies against the TypedDicts of ``org_instance/contract.py`` with pydantic.

Pydantic reads only ``typing_extensions.TypedDict`` on Python 3.11 and the contract module
imports nothing but the standard library, so each TypedDict (and every TypedDict inside it) is
rebuilt as a ``typing_extensions`` one with the same keys, types and required keys.
"""

from __future__ import annotations

from functools import cache
from typing import Any, NotRequired, Required, get_args, get_origin, get_type_hints, is_typeddict

import typing_extensions
from pydantic import TypeAdapter, ValidationError


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
    return typing_extensions.TypedDict(td.__name__, fields)  # type: ignore[operator]


@cache
def adapter(td: Any) -> TypeAdapter[Any]:
    """A strict pydantic adapter of the contract TypedDict ``td``."""
    return TypeAdapter(_typed_dict(td))


def problems(td: Any, value: Any) -> str:
    """Why ``value`` is not a ``td`` ('' when it is): the first error, with its location."""
    try:
        adapter(td).validate_python(value, strict=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        return f"{'.'.join(map(str, first['loc'])) or 'body'}: {first['msg']}"
    return ""
