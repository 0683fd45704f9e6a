"""``GET /api/v1/orgs/{org}/instance/logs``: an org instance's log, streamed as text
(:mod:`control_plane.instances.logs` says who may read it and how reads are bounded)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from litestar import Request, get
from litestar.params import FromPath, FromQuery
from litestar.response import Stream

from control_plane.client_ip import client_ip
from control_plane.deps import DB, Caller, RuntimeDep
from control_plane.instances.logs import (
    audit_read,
    authorised_reader,
    bounded,
    checked_tail,
    open_log,
    parse_since,
)


async def _encoded(lines: AsyncIterator[str]) -> AsyncIterator[bytes]:
    async for line in lines:
        yield (line + "\n").encode()


@get(
    "/api/v1/orgs/{org_ref:str}/instance/logs",
    tags=["instances"],
    media_type="text/plain; charset=utf-8",
)
async def instance_logs(
    request: Request[Any, Any, Any],
    org_ref: FromPath[str],
    principal: Caller,
    db: DB,
    runtime: RuntimeDep,
    tail: FromQuery[int | None] = None,
    since: FromQuery[str | None] = None,
    follow: FromQuery[bool] = False,
) -> Stream:
    """The instance's log as text, one line per line (org admins, platform admins).

    ``tail``: lines of history (default 100, at most ``ORGPLANE_INSTANCE_LOGS_MAX_TAIL``);
    ``since``: only lines logged at or after this ISO 8601 time; ``follow``: keep the stream
    open and send new lines as they are logged, for at most
    ``ORGPLANE_INSTANCE_LOGS_MAX_SECONDS``. Audited.
    """
    fleet = runtime.settings.fleet
    lines_wanted = checked_tail(tail, fleet.instance_logs_max_tail)
    after = parse_since(since)
    detail: dict[str, Any] = {
        "tail": lines_wanted,
        "since": after.isoformat() if after else None,
        "follow": follow,
    }
    access = await authorised_reader(request, db, principal, org_ref, **detail)
    org_id = access.org.id
    lines = await open_log(runtime, org_id, since=after, tail=lines_wanted, follow=follow)
    await audit_read(db, principal, org_id, ip=client_ip(request), **detail)
    return Stream(
        _encoded(bounded(lines, seconds=fleet.instance_logs_max_seconds)),
        media_type="text/plain; charset=utf-8",
        headers={"Cache-Control": "no-store"},
    )


ROUTES = [instance_logs]
