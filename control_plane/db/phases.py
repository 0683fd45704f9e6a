"""Where an org stands: its lifecycle phase and the state its owners asked for.

Both are stored as plain strings (``Org.phase``, ``Org.desired_state``); a ``StrEnum`` member
compares and binds as its value, so queries and JSON answers are unchanged.
docs/architecture.md describes the transitions.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class OrgPhase(StrEnum):
    """Where provisioning stands (health is kept apart: see ``Instance.healthy``)."""

    PENDING = "pending"
    PROVISIONING = "provisioning"
    STARTING = "starting"
    RUNNING = "running"
    UNHEALTHY = "unhealthy"
    HIBERNATED = "hibernated"
    STOPPING = "stopping"
    STOPPED = "stopped"
    DELETING = "deleting"
    DELETED = "deleted"
    FAILED = "failed"


class DesiredState(StrEnum):
    """What the org's owners (or the platform) asked for; the reconciler converges on it."""

    RUNNING = "running"
    STOPPED = "stopped"
    DELETED = "deleted"


#: Phases in which the org's instance serves (or should serve) requests.
SERVING: Final = frozenset({OrgPhase.RUNNING, OrgPhase.UNHEALTHY})
#: Phases the reconciler leaves alone until something changes.
STEADY: Final = (OrgPhase.RUNNING, OrgPhase.STOPPED, OrgPhase.HIBERNATED)
#: Phases of an instance being created; admission counts them against the concurrency cap.
BUSY: Final = (OrgPhase.PROVISIONING, OrgPhase.STARTING)
#: Phases with no instance meant to run, now or soon (a rollout skips such an org, visibly).
ASLEEP: Final = (
    OrgPhase.STOPPING,
    OrgPhase.STOPPED,
    OrgPhase.HIBERNATED,
    OrgPhase.DELETING,
    OrgPhase.DELETED,
)
