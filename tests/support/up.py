"""``orgplane up`` (what ``make run`` runs) in a process of its own, its output in a file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.instance.processes import child_env
from tests.support.services import REPO


def start_up(log: Path, **settings: str) -> subprocess.Popen[bytes]:
    """Start ``orgplane up`` with only ``settings`` as ``ORGPLANE_*``; its output goes to ``log``
    (stop it with ``tests.instance.processes.stop``)."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "control_plane.cli.main", "up"],
            cwd=REPO,
            env=child_env(**settings),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
