"""Per-org maintenance windows: when a rollout may upgrade the org (outside it, it waits).

``PUT /api/v1/orgs/{org}/maintenance-window`` ``{"weekdays": [0..6], "start": "HH:MM",
"duration_minutes": N}`` (UTC; 0 is Monday) sets it, ``GET`` reads it, ``DELETE`` removes it (any
time will do). Org admins and platform admins; every change is audited.
"""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from typing import Annotated

import msgspec
from litestar import delete, get, put
from litestar.params import JSONBody
from litestar.status_codes import HTTP_204_NO_CONTENT

from control_plane.actor import ActorDep
from control_plane.audit_trail import record
from control_plane.db.fleet_models import MaintenanceWindow
from control_plane.db.models import utcnow
from control_plane.deps import DB
from control_plane.orgs.guards import OrgAccessDep, needs_role
from orgplane_wire.problems import BadRequest, NotFound

_HHMM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")


def in_window(window: MaintenanceWindow | None, now: datetime) -> bool:
    """Whether ``now`` (UTC) falls in ``window``; no window: always."""
    if window is None:
        return True
    length = timedelta(minutes=window.duration_minutes)
    for back in range(8):  # a window may start on an earlier day and run past midnight
        day = (now - timedelta(days=back)).date()
        if day.weekday() not in window.weekdays:
            continue
        start = datetime.combine(day, time(), tzinfo=now.tzinfo) + timedelta(
            minutes=window.start_minute
        )
        if start <= now < start + length:
            return True
    return False


class WindowBody(msgspec.Struct, forbid_unknown_fields=True):
    weekdays: Annotated[list[int], msgspec.Meta(min_length=1, max_length=7)]
    start: Annotated[str, msgspec.Meta(max_length=5)]
    duration_minutes: Annotated[int, msgspec.Meta(ge=15, le=7 * 24 * 60)]


class WindowOut(msgspec.Struct):
    weekdays: list[int]
    start: str
    duration_minutes: int


def _out(row: MaintenanceWindow) -> WindowOut:
    hours, minutes = divmod(row.start_minute, 60)
    return WindowOut(
        weekdays=row.weekdays,
        start=f"{hours:02d}:{minutes:02d}",
        duration_minutes=row.duration_minutes,
    )


@get("/api/v1/orgs/{org_ref:str}/maintenance-window", tags=["fleet"])
async def read_window(access: OrgAccessDep, db: DB) -> WindowOut:
    """The org's maintenance window (404 ``no_maintenance_window`` when it has none)."""
    org = access.org
    row = await db.get(MaintenanceWindow, org.id)
    if row is None:
        raise NotFound("The org has no maintenance window.", code="no_maintenance_window")
    return _out(row)


@put(
    "/api/v1/orgs/{org_ref:str}/maintenance-window",
    tags=["fleet"],
    opt=needs_role("admin", to="set the maintenance window"),
)
async def put_window(
    data: JSONBody[WindowBody],
    access: OrgAccessDep,
    actor: ActorDep,
    db: DB,
) -> WindowOut:
    """Set when rollouts may upgrade the org (org admins)."""
    match = _HHMM.match(data.start)
    days = sorted(set(data.weekdays))
    if match is None or any(not 0 <= d <= 6 for d in days):
        raise BadRequest(
            "A window is weekdays 0-6 (Monday is 0) and a start time HH:MM (UTC).",
            code="invalid_maintenance_window",
        )
    org = access.org
    row = await db.get(MaintenanceWindow, org.id) or MaintenanceWindow(org_id=org.id)
    row.weekdays, row.duration_minutes = days, data.duration_minutes
    row.start_minute = int(match[1]) * 60 + int(match[2])
    row.updated_at = utcnow()
    db.add(row)
    out = _out(row)
    record(
        db,
        action="org.maintenance_window_set",
        actor=actor.user,
        org_id=org.id,
        target_type="org",
        target_id=org.id,
        ip=actor.ip,
        window=msgspec.to_builtins(out),
    )
    await db.commit()
    return out


@delete(
    "/api/v1/orgs/{org_ref:str}/maintenance-window",
    tags=["fleet"],
    status_code=HTTP_204_NO_CONTENT,
    opt=needs_role("admin", to="remove the maintenance window"),
)
async def delete_window(access: OrgAccessDep, actor: ActorDep, db: DB) -> None:
    """Remove the org's maintenance window (rollouts may upgrade it at any time)."""
    row = await db.get(MaintenanceWindow, access.org.id)
    if row is not None:
        await db.delete(row)
    record(
        db,
        action="org.maintenance_window_cleared",
        actor=actor.user,
        org_id=access.org.id,
        target_type="org",
        target_id=access.org.id,
        ip=actor.ip,
    )
    await db.commit()


ROUTES = [read_window, put_window, delete_window]
