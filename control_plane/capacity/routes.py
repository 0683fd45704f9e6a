"""``GET /api/v1/pool``: the warm pool as platform admins see it."""

from __future__ import annotations

import msgspec
from litestar import get
from sqlalchemy import func
from sqlmodel import col, select

from control_plane.auth import require_platform_admin
from control_plane.db.models import Spare
from control_plane.deps import DB, Caller, RuntimeDep
from provisioners.base import Provisioner


class PoolOut(msgspec.Struct):
    """The warm pool as platform admins see it."""

    provisioner: str
    supported: bool
    size: int
    ready: int
    warming: int
    claimed: int


@get("/api/v1/pool", tags=["reconciler"])
async def read_pool(principal: Caller, db: DB, runtime: RuntimeDep) -> PoolOut:
    """The warm pool's size setting and how many spares are ready, warming, or claimed."""
    require_platform_admin(principal)
    counts = dict(
        (await db.exec(select(Spare.state, func.count()).group_by(col(Spare.state)))).all()
    )
    provisioner: Provisioner | None = runtime.provisioner
    supported = provisioner is not None and provisioner.supports_warm_pool
    return PoolOut(
        provisioner=runtime.settings.provisioning.provisioner,
        supported=supported,
        size=runtime.settings.provisioning.warm_pool_size if supported else 0,
        ready=int(counts.get("ready", 0)),
        warming=int(counts.get("warming", 0)),
        claimed=int(counts.get("claimed", 0)),
    )


ROUTES = [read_pool]
