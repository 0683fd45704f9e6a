"""A test hook that makes the instance exit at a named restore step.

``ORGPLANE_FAULT_RESTORE_EXIT_AT=after_move_in`` (say) kills the process the first time a
restore reaches that step, as a crash or an OOM kill would; the tests then let the backend start
the instance again and check that the boot-time recovery put the pre-restore data back. Mirrors
``control_plane.reconciler.faults``. Never set it in production.
"""

from __future__ import annotations

import os
from typing import Final

import structlog

FAULT_ENV: Final = "ORGPLANE_FAULT_RESTORE_EXIT_AT"
FAULT_EXIT_CODE: Final = 86
STEPS: Final = (
    "after_staging",
    "after_journal",
    "after_move_aside",
    "after_move_in",
    "after_check",
    "after_commit",
)

log = structlog.get_logger("orgplane.instance.faults")


def fault_point(step: str) -> None:
    """Exit the process at once if the fault hook names ``step``."""
    if os.environ.get(FAULT_ENV) == step:
        log.warning("fault hook: exiting", step=step)
        os._exit(FAULT_EXIT_CODE)
