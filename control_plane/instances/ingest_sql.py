"""The statements the heartbeat reader (:mod:`control_plane.instances.ingest`) runs: the
registered orgs, their rows, and the two writes (due and changed heartbeats)."""

from __future__ import annotations

from sqlalchemy import bindparam, func, select, update
from sqlmodel import col

from control_plane.db.models import Instance, Org

REGISTERED = select(col(Instance.org_id)).where(col(Instance.last_heartbeat_at).is_not(None))
ROWS = select(
    col(Instance.org_id),
    col(Instance.usage_reported),
    col(Instance.last_heartbeat_seq),
    col(Instance.last_heartbeat_at),
    col(Instance.health),
    col(Instance.version),
    col(Instance.contract_version),
    col(Org.config_version),
).join(Org, col(Org.id) == col(Instance.org_id))
TABLE = Instance.__table__  # type: ignore[attr-defined]
DUE = (
    update(TABLE)
    .where(
        TABLE.c.org_id == bindparam("b_org"),
        TABLE.c.last_heartbeat_seq < bindparam("b_seq"),
    )
    .values(
        last_heartbeat_at=bindparam("b_now"),
        last_heartbeat_seq=bindparam("b_seq"),
        updated_at=bindparam("b_now"),
    )
)


#: A changed heartbeat's row, written only if it still has the ``seq`` it was judged against.
CHANGED = (
    update(TABLE)
    .where(
        TABLE.c.org_id == bindparam("b_org"),
        TABLE.c.last_heartbeat_seq == bindparam("b_prev"),
    )
    .values(
        last_heartbeat_at=bindparam("b_now"),
        last_heartbeat_seq=bindparam("b_seq"),
        version=bindparam("b_version"),
        health=bindparam("b_health"),
        contract_version=bindparam("b_contract"),
        usage_reported=bindparam("b_usage", type_=TABLE.c.usage_reported.type),
        updated_at=bindparam("b_now"),
        last_active_at=func.coalesce(
            bindparam("b_active", type_=TABLE.c.last_active_at.type), TABLE.c.last_active_at
        ),
    )
)
