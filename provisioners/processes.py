"""Processes of the local backend: start one in its own session, recognise it later, stop it.

A pid alone proves nothing after a restart (pids are reused), so a process counts as the one we
started only when its start time equals the recorded one *and* its command line carries our
marker (``-X orgplane_instance=<deployment>/<org>``, which CPython accepts and ignores). Linux
reads ``/proc``; elsewhere ``ps`` answers the same questions.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

_PROC = Path("/proc")


@dataclass(frozen=True)
class ProcessInfo:
    """What the OS says about a pid."""

    started: str  #: an opaque start-time token, stable for the life of the process
    cmdline: str
    zombie: bool


def marker(*, deployment_id: str, org_id: str) -> str:
    """The ``-X`` option that names the process's deployment and org."""
    return f"orgplane_instance={deployment_id}/{org_id}"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def process_info(pid: int) -> ProcessInfo | None:
    """The process ``pid``, or None when there is none."""
    if pid <= 0:
        return None
    if _PROC.is_dir():
        try:
            stat = (_PROC / str(pid) / "stat").read_text()
            cmdline = (_PROC / str(pid) / "cmdline").read_bytes()
        except OSError:
            return None
        # Fields after the parenthesised command name: state is the 3rd, starttime the 22nd.
        fields = stat[stat.rindex(")") + 2 :].split()
        return ProcessInfo(fields[19], cmdline.replace(b"\0", b" ").decode(), fields[0] == "Z")
    return _ps_info(pid)


def _ps_info(pid: int) -> ProcessInfo | None:
    result = subprocess.run(  # noqa: S603 - fixed argv, no shell
        ["ps", "-o", "stat=,lstart=,command=", "-p", str(pid)],  # noqa: S607 - ps from PATH
        capture_output=True,
        text=True,
        check=False,
    )
    line = result.stdout.strip()
    if result.returncode != 0 or not line:
        return None
    parts = line.split(None, 6)  # stat, then lstart's five words, then the command
    if len(parts) < 7:
        return None
    return ProcessInfo(" ".join(parts[1:6]), parts[6], parts[0].startswith("Z"))


def launch(
    argv: list[str], *, env: Mapping[str, str], cwd: Path, log_path: Path
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a new session (a crash of its parent does not take it down); its
    output goes to ``log_path``, created readable by this user only (it may name org data)."""
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "ab") as log:
        return subprocess.Popen(  # noqa: S603 - argv built by the caller, no shell
            argv,
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )


def find_by_marker(mark: str) -> list[int]:
    """Pids whose command line carries ``mark`` (Linux only; empty elsewhere)."""
    if not _PROC.is_dir():
        return []
    found = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if mark.encode() in (entry / "cmdline").read_bytes().split(b"\0"):
                found.append(int(entry.name))
    return found


async def terminate(pid: int, *, running: Callable[[], bool], grace: float) -> None:
    """SIGTERM the process group of ``pid``; SIGKILL it if it still runs after ``grace``
    seconds. ``running`` rechecks (and reaps) the process; it is called before every signal."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
        if not running():
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        for _ in range(max(1, int(wait / 0.05))):
            if not running():
                return
            await asyncio.sleep(0.05)
