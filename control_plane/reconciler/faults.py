"""A test hook that makes the control plane exit at a named provisioning step.

``ORGPLANE_FAULT_EXIT_AT=after_apply`` (say) kills the process the first time the reconciler
reaches that step, as a crash would. The crash tests restart the control plane without it and
check that the next pass converges. Never set it in production.
"""

from __future__ import annotations

import os

import structlog

FAULT_ENV = "ORGPLANE_FAULT_EXIT_AT"
FAULT_EXIT_CODE = 86
STEPS = (
    "after_claim",
    "after_credential",
    "after_redis_user",
    "before_apply",
    "after_apply",
    "after_running",
    "before_remove",
    "after_remove",
    "after_redis_delete",
)

log = structlog.get_logger("orgplane.faults")


def fault_point(step: str) -> None:
    """Exit the process at once if the fault hook names ``step``."""
    if os.environ.get(FAULT_ENV) == step:
        log.warning("fault hook: exiting", step=step)
        os._exit(FAULT_EXIT_CODE)
