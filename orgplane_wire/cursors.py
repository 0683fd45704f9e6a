"""Keyset pagination both services answer: ``?limit=&cursor=``, and a :class:`Page`.

A cursor is the last row's sort key, opaque to clients (base64url of a JSON list of strings);
one that does not decode, or holds the wrong number of parts, is 400 ``invalid_cursor``.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Generic, TypeVar

import msgspec

from orgplane_wire.problems import BadRequest

T = TypeVar("T")
MAX_LIMIT = 200


class Page(msgspec.Struct, Generic[T]):
    """One page of a list and the cursor of the next, if any."""

    items: list[T]
    next_cursor: str | None = None


def encode_cursor(*values: Any) -> str:
    """An opaque cursor from the sort key of the last row (each part as text)."""
    return base64.urlsafe_b64encode(msgspec.json.encode([str(v) for v in values])).decode()


def decode_cursor(cursor: str, parts: int) -> list[str]:
    """The sort key inside a cursor, or 400 ``invalid_cursor``."""
    try:
        values = msgspec.json.decode(base64.urlsafe_b64decode(cursor.encode()), type=list[str])
    except (binascii.Error, ValueError, msgspec.DecodeError):
        values = []
    if len(values) != parts:
        raise BadRequest("The cursor is not valid.", code="invalid_cursor", field="cursor")
    return values


def check_limit(limit: int, *, field: str | None = "limit") -> int:
    """``limit`` within 1..MAX_LIMIT, or 400 ``invalid_limit`` (naming ``field`` if given)."""
    if not 1 <= limit <= MAX_LIMIT:
        detail = f"limit must be between 1 and {MAX_LIMIT}."
        if field:
            raise BadRequest(detail, code="invalid_limit", field=field)
        raise BadRequest(detail, code="invalid_limit")
    return limit
