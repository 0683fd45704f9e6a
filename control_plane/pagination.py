"""Keyset pagination: ``?limit=&cursor=``; the cursor is the last row's sort key, opaque."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any, Generic, TypeVar, cast

import msgspec
from sqlalchemy import ColumnElement, or_
from sqlmodel.sql.expression import SelectOfScalar

from control_plane.errors import BadRequest

T = TypeVar("T")
#: A select of rows or of scalars (both are SQLAlchemy ``Select`` subclasses).
Q = TypeVar("Q")
MAX_LIMIT = 200


class Page(msgspec.Struct, Generic[T]):
    """One page of a list and the cursor of the next, if any."""

    items: list[T]
    next_cursor: str | None = None


def encode_cursor(*values: str) -> str:
    """An opaque cursor from the sort key of the last row."""
    return base64.urlsafe_b64encode(msgspec.json.encode(list(values))).decode()


def decode_cursor(cursor: str, parts: int) -> list[str]:
    """The sort key inside a cursor, or 400 ``invalid_cursor``."""
    try:
        values = msgspec.json.decode(base64.urlsafe_b64decode(cursor.encode()), type=list[str])
    except (binascii.Error, ValueError, msgspec.DecodeError):
        values = []
    if len(values) != parts:
        raise BadRequest("The cursor is not valid.", code="invalid_cursor", field="cursor")
    return values


def check_limit(limit: int) -> int:
    """``limit`` within 1..MAX_LIMIT, or 400."""
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(
            f"limit must be between 1 and {MAX_LIMIT}.", code="invalid_limit", field="limit"
        )
    return limit


def after(
    query: SelectOfScalar[Any], primary: Any, tiebreak: Any, cursor: str | None
) -> SelectOfScalar[Any]:
    """``query`` ordered by (primary, tiebreak), starting after ``cursor``."""
    if cursor:
        first, second = decode_cursor(cursor, 2)
        # ``primary >= first`` on its own: an index on ``primary`` starts the scan there. The
        # equivalent ``primary > first OR (primary = first AND ...)`` alone is only a filter,
        # and a page at 90% of 100,000 orgs read the 90,000 rows before it (docs/scaling.md).
        cond: ColumnElement[bool] = (primary >= first) & or_(primary > first, tiebreak > second)
        query = query.where(cond)
    return query.order_by(primary, tiebreak)


def newest_first(query: Q, created: Any, tiebreak: Any, cursor: str | None) -> Q:
    """``query`` ordered by (created, tiebreak) descending, starting after ``cursor``, whose
    first part is an ISO timestamp (see :func:`timestamp_cursor`)."""
    if cursor:
        at, last_id = decode_cursor(cursor, 2)
        try:
            moment = datetime.fromisoformat(at)
        except ValueError:
            raise BadRequest(
                "The cursor is not valid.", code="invalid_cursor", field="cursor"
            ) from None
        cond: ColumnElement[bool] = (created <= moment) & or_(created < moment, tiebreak < last_id)
        query = cast(Any, query).where(cond)
    return cast(Q, cast(Any, query).order_by(created.desc(), tiebreak.desc()))


def timestamp_cursor(created: datetime, row_id: str) -> str:
    """The cursor :func:`newest_first` reads."""
    return encode_cursor(created.isoformat(), row_id)
