"""Fault points: a test hook that makes a process exit at a named step, as a crash would.

Each service names its steps and the variable that picks one (the control plane's
``ORGPLANE_FAULT_EXIT_AT`` in ``control_plane.reconciler.faults``, the instance's restore steps
in ``org_instance.backup.faults``); the crash tests set it, let the process die with
:data:`FAULT_EXIT_CODE` and check what the next start recovers. Never set one in production.
"""

from __future__ import annotations

import os
from typing import Any, Final

import structlog

FAULT_EXIT_CODE: Final = 86

log = structlog.get_logger("orgplane.faults")


def exit_if_named(env: str, step: str, **context: Any) -> None:
    """Exit the process at once (no clean-up, like a kill) if ``$env`` names ``step``."""
    if os.environ.get(env) == step:
        log.warning("fault hook: exiting", step=step, **context)
        os._exit(FAULT_EXIT_CODE)
