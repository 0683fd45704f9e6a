"""A test hook that makes the instance exit at a named restore step.

``ORGPLANE_FAULT_RESTORE_EXIT_AT=after_move_in`` (say) kills the process the first time a
restore reaches that step, as a crash or an OOM kill would; the tests then let the backend start
the instance again and check that the boot-time recovery put the pre-restore data back. The hook
itself is :mod:`orgplane_wire.faults`, which the control plane's reconciler uses too. Never set
it in production.
"""

from __future__ import annotations

from typing import Final

from orgplane_wire.faults import exit_if_named

FAULT_ENV: Final = "ORGPLANE_FAULT_RESTORE_EXIT_AT"
STEPS: Final = (
    "after_staging",
    "after_journal",
    "after_move_aside",
    "after_move_in",
    "after_check",
    "after_commit",
)


def fault_point(step: str) -> None:
    """Exit the process at once if the fault hook names ``step``."""
    exit_if_named(FAULT_ENV, step)
