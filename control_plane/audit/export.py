"""Export one org's audit log as a file: ``GET /api/v1/orgs/{org}/audit/export``.

``format=jsonl`` (the default: one JSON object per line, the fields of ``GET /api/v1/audit``)
or ``format=csv`` (a header row, then one row per event; ``detail`` as JSON text). ``since``
(inclusive) and ``until`` (exclusive) bound the events' time. Oldest first.

Who: org admins and owners (admins of an ancestor too) of an org whose effective features
include ``audit_export`` (403 ``feature_not_in_plan`` otherwise), and platform admins for any
org whatever its plan and access-approval setting (they read every event through
``GET /api/v1/audit`` already: the log is the platform's record, not the org's data). Members
get 403 ``admin_required``; an org the caller cannot see is 404. A refusal in a visible org is
audited ``audit.export`` with outcome ``denied``; an export is audited before its first byte,
and is a snapshot: it holds the events up to the last one recorded before the export's own.

Memory stays flat whatever the log's size: the answer is streamed, read in batches of
:data:`BATCH` rows by keyset (``id`` after the last sent), each batch encoded and sent before
the next is read, on a session of its own that holds no transaction between batches.

CSV cells that a spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``, ``@``,
a tab or a carriage return) are prefixed with ``'`` (OWASP's advice for CSV injection).
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Final

import msgspec
from litestar import Request, get
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, OpenAPIType, Operation, Schema
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import Stream
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.audit.schemas import AuditEventOut, event_out
from control_plane.audit_trail import record
from control_plane.client_ip import client_ip
from control_plane.db.models import AuditEvent, utcnow
from control_plane.db.types import utc
from control_plane.deps import DB, Caller, RuntimeDep
from control_plane.features.plans import require_feature
from control_plane.orgs.access import OrgAccess, org_access
from control_plane.orgs.hierarchy import effective_features
from orgplane_wire.problems import BadRequest, ProblemError

#: Rows read (and encoded, and sent) at a time.
BATCH: Final = 500
FORMATS: Final = {"jsonl": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}
COLUMNS: Final = tuple(AuditEventOut.__struct_fields__)
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")

FormatName = Annotated[str, QueryParameter(max_length=10)]


def safe_cell(value: Any) -> str:
    """A CSV cell's text: JSON for ``detail``, "" for None, ``'`` before a formula start."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    text = msgspec.json.encode(value).decode() if isinstance(value, dict) else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _jsonl(events: Sequence[AuditEvent], _: bool) -> bytes:
    return b"".join(msgspec.json.encode(event_out(e)) + b"\n" for e in events)


def _csv(events: Sequence[AuditEvent], first: bool) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    if first:
        writer.writerow(COLUMNS)
    for event in events:
        out = event_out(event)
        writer.writerow([safe_cell(getattr(out, name)) for name in COLUMNS])
    return buffer.getvalue().encode()


ENCODERS: Final[dict[str, Callable[[Sequence[AuditEvent], bool], bytes]]] = {
    "jsonl": _jsonl,
    "csv": _csv,
}


@dataclass
class ExportOperation(Operation):
    """The export's OpenAPI operation: its 200 is JSON lines or CSV, as ``format`` asks."""

    def __post_init__(self) -> None:
        ok = (self.responses or {}).get("200")
        if isinstance(ok, OpenAPIResponse):
            text = Schema(type=OpenAPIType.STRING)
            ok.content = {
                media.split(";")[0]: OpenAPIMediaType(schema=text) for media in FORMATS.values()
            }


def _window(since: datetime | None, until: datetime | None) -> list[Any]:
    since, until = (None if t is None else utc(t) for t in (since, until))
    conditions: list[Any] = []
    if since is not None:
        conditions.append(col(AuditEvent.at) >= since)
    if until is not None:
        conditions.append(col(AuditEvent.at) < until)
    if since is not None and until is not None and since >= until:
        raise BadRequest("since must be before until.", code="invalid_window", field="since")
    return conditions


async def _authorised(
    request: Request[Any, Any, Any], db: DB, principal: Caller, org_ref: str, **detail: Any
) -> OrgAccess:
    """The org if the caller may export its log; a refusal in a visible org is audited as
    denied (in its own transaction) and answered 403."""
    access = await org_access(db, principal, org_ref)
    if principal.is_platform_admin:
        return access
    try:
        access.require("admin", to="export its audit log")
        enabled = await effective_features(db, access.org)
        require_feature(enabled, "audit_export", to="export its audit log")
    except ProblemError as refused:
        await _audit(db, request, principal, access, outcome="denied", code=refused.code, **detail)
        raise
    return access


async def _audit(
    db: DB,
    request: Request[Any, Any, Any],
    principal: Caller,
    access: OrgAccess,
    *,
    outcome: str = "success",
    **detail: Any,
) -> None:
    record(
        db,
        action="audit.export",
        outcome=outcome,
        actor=principal.user,
        org_id=access.org.id,
        target_type="org",
        target_id=access.org.id,
        ip=client_ip(request),
        **detail,
    )
    await db.commit()


async def encoded_batches(
    sessions: async_sessionmaker[AsyncSession],
    org_id: str,
    *,
    through: int,
    window: list[Any],
    encode: Callable[[Sequence[AuditEvent], bool], bytes],
) -> AsyncIterator[bytes]:
    """The org's events with ids up to ``through``, encoded a batch at a time."""
    last, first = 0, True
    base = select(AuditEvent).where(col(AuditEvent.org_id) == org_id, *window)
    async with sessions() as db:
        while True:
            query = base.where(col(AuditEvent.id) > last, col(AuditEvent.id) <= through)
            batch = (await db.exec(query.order_by(col(AuditEvent.id)).limit(BATCH))).all()
            if batch or first:
                yield encode(batch, first)
            if len(batch) < BATCH:
                return
            last, first = batch[-1].id or 0, False


@get(
    "/api/v1/orgs/{org_ref:str}/audit/export",
    tags=["audit"],
    operation_class=ExportOperation,
)
async def export_audit(
    request: Request[Any, Any, Any],
    org_ref: FromPath[str],
    principal: Caller,
    db: DB,
    runtime: RuntimeDep,
    format: FormatName = "jsonl",
    since: FromQuery[datetime | None] = None,
    until: FromQuery[datetime | None] = None,
) -> Stream:
    """The org's audit log, oldest first, streamed as JSON lines or CSV (a file to keep).

    Org admins of an org whose plan has ``audit_export``; platform admins for any org. Audited.
    """
    if format not in FORMATS:
        raise BadRequest(
            f"format must be one of: {', '.join(FORMATS)}.", code="invalid_format", field="format"
        )
    window = _window(since, until)
    detail: dict[str, Any] = {
        "format": format,
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
    }
    access = await _authorised(request, db, principal, org_ref, **detail)
    org = access.org
    last_query = select(func.max(AuditEvent.id)).where(col(AuditEvent.org_id) == org.id)
    through = (await db.exec(last_query)).one() or 0
    await _audit(db, request, principal, access, through_id=through, **detail)
    stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
    filename = f"audit-{org.slug}-{stamp}.{format}"
    rows = encoded_batches(
        runtime.readers, org.id, through=through, window=window, encode=ENCODERS[format]
    )
    return Stream(
        rows,
        media_type=FORMATS[format],
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )
