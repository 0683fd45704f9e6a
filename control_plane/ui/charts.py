"""Usage series from :class:`UsageSample` rows and the inline SVG that draws them.

The SVG is built from numbers only (every text node is escaped), so it is safe to insert as
markup; it needs no script and no style attribute, which the Content-Security-Policy forbids.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from markupsafe import Markup, escape
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.db.models import UsageSample, utcnow
from control_plane.instances.heartbeat import USAGE_BUCKET


def _bucket_start(moment: datetime) -> datetime:
    step = USAGE_BUCKET.total_seconds()
    return datetime.fromtimestamp(moment.timestamp() // step * step, UTC)


async def request_series(
    db: AsyncSession, *, org_ids: Sequence[str], hours: int, now: datetime | None = None
) -> dict[str, list[int]]:
    """Requests per hourly bucket over the last ``hours`` for each org, oldest first."""
    newest = _bucket_start(now or utcnow())
    oldest = newest - timedelta(hours=hours - 1)
    series = {org_id: [0] * hours for org_id in org_ids}
    if not org_ids:
        return series
    query = select(UsageSample.org_id, UsageSample.bucket, UsageSample.requests).where(
        col(UsageSample.org_id).in_(list(org_ids)), col(UsageSample.bucket) >= oldest
    )
    for org_id, bucket, requests in (await db.exec(query)).all():
        index = int((bucket - oldest) / USAGE_BUCKET)
        if 0 <= index < hours:
            series[org_id][index] += requests
    return series


def sparkline(values: Sequence[int], *, label: str, width: int = 120, height: int = 24) -> Markup:
    """A small line chart of ``values`` with an accessible name (the total)."""
    top = max(values, default=0) or 1
    step = width / max(len(values) - 1, 1)
    points = " ".join(
        f"{i * step:.1f},{height - 2 - (v / top) * (height - 4):.1f}" for i, v in enumerate(values)
    )
    title = escape(f"{label}: {sum(values)} requests")
    # Every interpolated value is a number or escaped above.
    return Markup(  # noqa: S704
        f'<svg class="spark" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" aria-label="{title}"><title>{title}</title>'
        f'<polyline fill="none" stroke="#1d4ed8" stroke-width="1.5" points="{points}"/></svg>'
    )


def bar_chart(
    values: Sequence[int],
    *,
    label: str,
    start: datetime,
    step: timedelta,
    width: int = 720,
    height: int = 160,
) -> Markup:
    """Bars of ``values`` (one per bucket from ``start``) with axis labels and per-bar titles."""
    top = max(values, default=0) or 1
    pad_left, pad_bottom = 48, 20
    inner_w, inner_h = width - pad_left - 4, height - pad_bottom - 8
    bar_w = inner_w / max(len(values), 1)
    bars = []
    for i, value in enumerate(values):
        h = value / top * inner_h
        at = (start + step * i).strftime("%Y-%m-%d %H:00")
        bars.append(
            f'<rect x="{pad_left + i * bar_w:.1f}" y="{8 + inner_h - h:.1f}" '
            f'width="{max(bar_w - 1, 0.5):.1f}" height="{h:.1f}" fill="#1d4ed8">'
            f"<title>{escape(at)}: {value}</title></rect>"
        )
    title = escape(
        f"{label}: {sum(values)} requests in total, at most {max(values, default=0)} per hour"
    )
    axis = (
        f'<text x="{pad_left - 6}" y="16" text-anchor="end" font-size="11">{top}</text>'
        f'<text x="{pad_left - 6}" y="{8 + inner_h}" text-anchor="end" font-size="11">0</text>'
        f'<text x="{pad_left}" y="{height - 4}" font-size="11">'
        f"{escape(start.strftime('%m-%d %H:00'))}</text>"
        f'<text x="{width - 4}" y="{height - 4}" text-anchor="end" font-size="11">now</text>'
        f'<line x1="{pad_left}" y1="{8 + inner_h}" x2="{width - 4}" y2="{8 + inner_h}" '
        f'stroke="#555"/>'
    )
    # Every interpolated value is a number or escaped above.
    return Markup(  # noqa: S704
        f'<svg class="chart" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" aria-label="{title}"><title>{title}</title>'
        f"{axis}{''.join(bars)}</svg>"
    )


def series_start(hours: int, now: datetime | None = None) -> datetime:
    """The first bucket of a ``hours``-long series ending now."""
    return _bucket_start(now or utcnow()) - timedelta(hours=hours - 1)
