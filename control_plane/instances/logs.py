"""Reading an org instance's log through its provisioner, for the API and the admin UI.

``GET /api/v1/orgs/{org}/instance/logs?tail=&since=&follow=`` answers ``text/plain``, one log
line per line, as the backend gives them (local: ``instance.log``; Docker: the container's
output; Kubernetes: the pod's log). Only platform admins (through the staff gate where the org
requires approval) and the org's admins read it: instance logs name users, routes and request
ids. Every read is audited (``instance.logs.read``; a refused one with ``outcome: denied``)
before a line is sent. Reads are bounded: at most ``ORGPLANE_INSTANCE_LOGS_MAX_TAIL`` lines of
history, and a stream, followed or not, ends after ``ORGPLANE_INSTANCE_LOGS_MAX_SECONDS`` or
when the client goes away, whichever comes first; either way the backend's stream is closed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Final

import anyio
import structlog
from litestar import Request

from control_plane.audit_trail import record
from control_plane.client_ip import client_ip
from control_plane.db.types import utc
from control_plane.deps import DB, Caller
from control_plane.orgs.access import OrgAccess, org_access
from control_plane.runtime import Runtime
from orgplane_wire.problems import BadRequest, Conflict, ProblemError
from provisioners.errors import ProvisionerError, UnsupportedOperationError

log = structlog.get_logger("orgplane.instances")

#: Lines of history a read shows when it does not say.
DEFAULT_TAIL: Final = 100
#: Longest the admin UI waits for an instance's recent log lines.
UI_READ_SECONDS: Final = 5.0


def parse_since(value: str | None) -> datetime | None:
    """An ISO 8601 time (UTC when it names no zone), or 400 ``invalid_since``."""
    if value is None or value == "":
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise BadRequest(
            "since must be an ISO 8601 time, such as 2026-01-31T12:00:00Z.",
            code="invalid_since",
            field="since",
        ) from None
    return utc(when)


def checked_tail(tail: int | None, maximum: int) -> int:
    """``tail`` (default :data:`DEFAULT_TAIL`) within 0..``maximum``, or 400 ``invalid_tail``."""
    if tail is None:
        return min(DEFAULT_TAIL, maximum)
    if not 0 <= tail <= maximum:
        raise BadRequest(
            f"tail must be between 0 and {maximum}.", code="invalid_tail", field="tail"
        )
    return tail


async def authorised_reader(
    request: Request[Any, Any, Any], db: DB, principal: Caller, org_ref: str, **detail: Any
) -> OrgAccess:
    """The org, if the caller may read its instance's log; a refusal in a visible org is
    audited as denied (in its own transaction) and answered 403."""
    access = await org_access(db, principal, org_ref)
    try:
        access.require("admin", to="read the instance's logs")
    except ProblemError as refused:
        ip = client_ip(request)
        await audit_read(
            db, principal, access.org.id, ip=ip, outcome="denied", code=refused.code, **detail
        )
        raise
    return access


async def audit_read(
    db: DB, principal: Caller, org_id: str, *, ip: str, outcome: str = "success", **detail: Any
) -> None:
    """Record a read of the org's instance log (or its refusal) and commit it, before any line
    is sent."""
    record(
        db,
        action="instance.logs.read",
        outcome=outcome,
        actor=principal.user,
        org_id=org_id,
        target_type="instance",
        target_id=org_id,
        ip=ip,
        **detail,
    )
    await db.commit()


async def open_log(
    runtime: Runtime, org_id: str, *, since: datetime | None, tail: int, follow: bool
) -> AsyncIterator[str]:
    """The backend's log lines of the org's instance; 409 ``instance_not_provisioned`` when
    it has none, 409 ``logs_unsupported`` when the backend cannot read logs, 503
    ``provisioner_unavailable`` when the backend does not answer."""
    provisioner = runtime.provisioner
    try:
        status = await provisioner.status(org_id=org_id) if provisioner is not None else None
    except ProvisionerError as exc:
        raise ProblemError(
            "The instance's backend does not answer; try again shortly.",
            code="provisioner_unavailable",
            status=503,
        ) from exc
    if provisioner is None or status is None or status.state == "absent":
        raise Conflict("The org has no instance.", code="instance_not_provisioned")
    try:
        lines: AsyncIterator[str] = provisioner.logs(
            org_id=org_id, since=since, tail=tail, follow=follow
        )
    except UnsupportedOperationError as exc:
        raise Conflict(str(exc), code="logs_unsupported") from exc
    return lines


async def bounded(lines: AsyncIterator[str], *, seconds: float) -> AsyncIterator[str]:
    """``lines`` until they end, ``seconds`` pass, or the consumer stops (the client went);
    the backend's stream is closed in every case. A backend failure ends the stream early."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    try:
        while (remaining := deadline - loop.time()) > 0:
            try:
                line = await asyncio.wait_for(anext(lines), remaining)
            except (StopAsyncIteration, TimeoutError):
                return
            except ProvisionerError as exc:
                log.warning("instance log stream ended", error=str(exc))
                return
            yield line
    finally:
        with anyio.CancelScope(shield=True):  # the client left: the stream is cancelled
            await lines.aclose()  # type: ignore[attr-defined]


async def recent_lines(
    runtime: Runtime, db: DB, principal: Caller, access: OrgAccess, *, tail: int, ip: str
) -> tuple[list[str], str]:
    """The last ``tail`` lines for the admin UI's panel, read like the API's (audited, bounded
    to a few seconds), and why there are none when reading failed ("" otherwise)."""
    org_id = access.org.id
    try:
        lines = await open_log(runtime, org_id, since=None, tail=tail, follow=False)
    except ProblemError as exc:
        return [], exc.detail
    await audit_read(db, principal, org_id, ip=ip, tail=tail, since=None, follow=False, via="ui")
    seconds = min(UI_READ_SECONDS, runtime.settings.fleet.instance_logs_max_seconds)
    return [line async for line in bounded(lines, seconds=seconds)], ""
