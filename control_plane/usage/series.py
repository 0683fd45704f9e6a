"""Usage time series and top-org rankings, read from the hourly :class:`UsageSample` rows.

Heartbeats add counter deltas to the sample of their hour (``requests``, ``sessions``,
``messages``) and keep gauges (``active_users``: the hour's peak, ``storage_bytes``: the last
report). A bucket of ``step`` seconds sums the deltas and takes the peak of the gauges.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.db.models import Org, UsageSample
from control_plane.db.types import utc
from control_plane.orgs.hierarchy import live_orgs
from orgplane_wire.problems import BadRequest

#: Counter deltas, summed over a bucket.
SUMMED: Final = ("requests", "sessions", "messages")
#: Gauges, whose peak a bucket shows.
PEAKED: Final = ("active_users", "storage_bytes")
METRICS: Final = SUMMED + PEAKED
HOUR: Final = 3600
#: Bounds every answer: at most this many points, over at most this long a window.
MAX_POINTS: Final = 2000
MAX_WINDOW: Final = timedelta(days=400)


@dataclass(frozen=True)
class Window:
    """A half-open time range [start, end), its start aligned to the hour."""

    start: datetime
    end: datetime


def window(start: datetime | None, end: datetime | None, *, default: timedelta) -> Window:
    """The requested window (default: the last ``default`` up to now), or 400 ``invalid_range``."""
    stop = utc(end) if end else datetime.now(UTC)
    begin = utc(start) if start else stop - default
    begin = datetime.fromtimestamp(begin.timestamp() // HOUR * HOUR, UTC)
    if stop <= begin or stop - begin > MAX_WINDOW:
        raise BadRequest(
            f"end must be after start, at most {MAX_WINDOW.days} days later.",
            code="invalid_range",
            field="end",
        )
    return Window(begin, stop)


def parse_metrics(text: str | None) -> list[str]:
    """The comma-separated metrics (all of them when empty), or 400 ``unknown_metric``."""
    names = [m.strip() for m in (text or "").split(",") if m.strip()] or list(METRICS)
    for name in names:
        if name not in METRICS:
            raise BadRequest(
                f"Unknown metric {name!r}; choose among: {', '.join(METRICS)}.",
                code="unknown_metric",
                field="metrics",
            )
    return list(dict.fromkeys(names))


def check_step(step: int, span: Window) -> None:
    """400 ``invalid_step`` unless ``step`` is whole hours giving at most MAX_POINTS points."""
    if step < HOUR or step % HOUR:
        raise BadRequest("step must be a whole number of hours (3600 s).", code="invalid_step")
    if (span.end - span.start).total_seconds() / step > MAX_POINTS:
        raise BadRequest(f"At most {MAX_POINTS} points; raise step.", code="invalid_step")


async def org_series(
    db: AsyncSession, *, org_id: str, span: Window, step: int, metrics: list[str]
) -> list[dict[str, Any]]:
    """One point per ``step`` bucket of ``span`` (zeros where nothing was reported)."""
    count = -(-int((span.end - span.start).total_seconds()) // step)
    points: list[dict[str, Any]] = [
        {"t": span.start + timedelta(seconds=i * step), **dict.fromkeys(metrics, 0)}
        for i in range(count)
    ]
    query = select(UsageSample).where(
        col(UsageSample.org_id) == org_id,
        col(UsageSample.bucket) >= span.start,
        col(UsageSample.bucket) < span.end,
    )
    for sample in (await db.exec(query)).all():
        index = int((sample.bucket - span.start).total_seconds()) // step
        point = points[index]
        for name in metrics:
            value = getattr(sample, name)
            point[name] = point[name] + value if name in SUMMED else max(point[name], value)
    return points


def series_csv(points: list[dict[str, Any]], metrics: list[str]) -> str:
    """The points as CSV: a ``time`` column (ISO 8601, UTC) and one column per metric."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["time", *metrics])
    for point in points:
        writer.writerow([point["t"].isoformat(), *(point[m] for m in metrics)])
    return out.getvalue()


async def top_orgs(
    db: AsyncSession, *, metric: str, span: Window, plan: str | None, limit: int
) -> list[dict[str, Any]]:
    """Live orgs ranked by ``metric`` over ``span`` (summed, or the peak of a gauge)."""
    column = col(getattr(UsageSample, metric))
    value = (func.sum(column) if metric in SUMMED else func.max(column)).label("value")
    query = (
        select(Org.id, Org.slug, Org.plan, value)
        .join(UsageSample, col(UsageSample.org_id) == col(Org.id))
        .where(
            col(UsageSample.bucket) >= span.start, col(UsageSample.bucket) < span.end, live_orgs()
        )
        .group_by(col(Org.id), col(Org.slug), col(Org.plan))
        .order_by(value.desc(), col(Org.slug))
        .limit(limit)
    )
    if plan:
        query = query.where(col(Org.plan) == plan)
    rows = (await db.exec(query)).all()
    return [
        {"org_id": org_id, "slug": slug, "plan": org_plan, "value": int(total or 0)}
        for org_id, slug, org_plan, total in rows
    ]
