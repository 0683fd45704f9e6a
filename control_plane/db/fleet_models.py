"""The fleet's tables: instance versions, staged rollouts and per-org maintenance windows
(``control_plane.fleet``). Registered with the other tables by ``control_plane.db.models``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from control_plane.db.models import _json, _json_list, _ts, new_id


class InstanceVersion(SQLModel, table=True):
    """A version of the org instance: an allow-listed image reference with notes."""

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    #: What operators and heartbeats call it (``ORGPLANE_INSTANCE_VERSION`` of its instances).
    name: str = Field(unique=True, max_length=64)
    image: str = Field(unique=True, max_length=300)
    repository: str = Field(max_length=300)
    tag: str = Field(default="", max_length=128)
    digest: str = Field(default="", max_length=71)
    notes: str = Field(default="", max_length=2000)
    #: The instance's SQLite schema generation: a rollback to a lower one needs the snapshot.
    schema_version: int = 0
    created_by: str = Field(default="", max_length=32)
    created_at: datetime = _ts()


class Rollout(SQLModel, table=True):
    """A staged move of a set of orgs to ``to_version_id``; driven by the reconciler loop.

    ``state``: running, paused, rolling_back, finished, rolled_back.
    """

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    from_version_id: str | None = Field(default=None, max_length=32)
    to_version_id: str = Field(max_length=32)
    #: ``{"kind": "all"|"plan"|"subtree"|"orgs"|"percent", ...}`` as asked.
    target: dict[str, Any] = _json()
    #: The wave spec as asked ([1, "5%", "25%", "100%"]).
    waves: list[Any] = _json_list()
    wave_count: int = 0
    current_wave: int = 0
    max_concurrent: int = 5
    health_deadline_seconds: int = 300
    #: Pause when more than this fraction of a wave's orgs failed.
    failure_threshold: float = 0.0
    #: ``restore`` the pre-upgrade snapshot or ``refuse`` when a rollback lowers the schema.
    on_older_schema: str = Field(default="refuse", max_length=16)
    #: Failures of the current wave already accepted by a resume.
    failures_accepted: int = 0
    state: str = Field(default="running", index=True, max_length=16)
    reason: str = Field(default="", max_length=1000)
    created_by: str = Field(default="", max_length=32)
    created_at: datetime = _ts()
    updated_at: datetime = _ts()
    finished_at: datetime | None = _ts(nullable=True)
    lease_owner: str = Field(default="", max_length=64)
    lease_expires_at: datetime | None = _ts(nullable=True)


class RolloutOrg(SQLModel, table=True):
    """One org of a rollout. ``state``: queued, upgrading, upgraded, reverting, failed
    (rolled back after a failed upgrade), rolled_back, skipped, cancelled, refused."""

    __table_args__ = (
        UniqueConstraint("rollout_id", "org_id", name="uq_rolloutorg_rollout_org"),
        Index("ix_rolloutorg_rollout_wave_state", "rollout_id", "wave", "state"),
    )
    id: int | None = Field(default=None, primary_key=True)
    rollout_id: str = Field(foreign_key="rollout.id", max_length=32)
    org_id: str = Field(foreign_key="org.id", max_length=32)
    #: 0-based wave; None for orgs skipped when the rollout was made.
    wave: int | None = None
    state: str = Field(default="queued", max_length=16)
    #: The image the org ran before (what a rollback returns it to).
    from_image: str = Field(default="", max_length=300)
    #: ``Instance.assigned_image`` before the upgrade ("" = it followed its plan's image), put
    #: back by a rollback; None on rows made before it was recorded (then ``from_image``).
    from_assigned_image: str | None = Field(default=None, max_length=300)
    backup_id: str = Field(default="", max_length=32)
    #: After a failed upgrade: whether the org's rollback is done.
    reverted: bool = False
    reason: str = Field(default="", max_length=1000)
    started_at: datetime | None = _ts(nullable=True)
    deadline_at: datetime | None = _ts(nullable=True)
    finished_at: datetime | None = _ts(nullable=True)


class MaintenanceWindow(SQLModel, table=True):
    """When an org may be upgraded by a rollout: on ``weekdays`` (0 = Monday), from
    ``start_minute`` (UTC, minutes after midnight) for ``duration_minutes``."""

    org_id: str = Field(foreign_key="org.id", primary_key=True, max_length=32)
    weekdays: list[int] = _json_list()
    start_minute: int = 0
    duration_minutes: int = 60
    updated_at: datetime = _ts()
