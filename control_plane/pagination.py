"""Keyset pagination in SQL: the queries that start after a cursor (:mod:`orgplane_wire.cursors`
encodes and decodes cursors and checks ``limit`` for both services)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar, cast

from sqlalchemy import ColumnElement, or_
from sqlmodel.sql.expression import SelectOfScalar

from orgplane_wire.cursors import decode_cursor, encode_cursor
from orgplane_wire.problems import BadRequest

#: A select of rows or of scalars (both are SQLAlchemy ``Select`` subclasses).
Q = TypeVar("Q")


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
