"""Column types: one timestamp type that is aware UTC on every database.

``DateTime(timezone=True)`` is ``TIMESTAMPTZ`` on PostgreSQL, which hands back aware datetimes
in the session's zone, and plain text on SQLite, which hands back naive ones (the zone is
dropped on the way in). :class:`UTCDateTime` keeps the same SQL type (no migration) and
normalises both ways: every value bound is converted to UTC (naive values are taken as UTC), and
every value read is aware UTC. Comparisons bind through it too, so SQLite, which compares the
stored text, always compares UTC with UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


def utc(moment: datetime) -> datetime:
    """``moment`` as aware UTC; a naive ``moment`` is taken to be UTC already.

    For values from outside (query parameters, JSON bodies); values read from the database are
    aware UTC already.
    """
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp column that stores UTC and reads aware UTC datetimes (see module)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """UTC on the way in (SQLite keeps no zone, so it must be UTC for every row)."""
        return None if value is None else utc(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """Aware UTC on the way out, whatever the driver handed back."""
        return None if value is None else utc(value)
