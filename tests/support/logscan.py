"""After the whole suite: no unhandled exception in any log our processes wrote.

Every control plane, org instance and CLI process a test starts writes its output to a file
under the session's base temporary directory (``cp.log``, ``instance.log``,
``control-plane.log``, ``server.log``, ``server-N.log``, ``up.log``, ...). At the end of the
session (``pytest_sessionfinish`` in ``tests/conftest.py``; under xdist in the controller, after
every worker has stopped its processes) each ``*.log`` file there is read, and any line with
one of :data:`MARKERS` fails the run, with the file, the line number and the exception.

A handled error is logged as a warning with its message, never with a traceback. An exception
a test provokes on purpose and the code cannot avoid reporting goes in :data:`ALLOWED`, narrowly
(a file pattern and the exception's message) and with the reason.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path

#: What marks an unhandled exception in a log.
MARKERS = ("Traceback (most recent call last)", "Exception in ASGI application", "unhandled error")

#: Logs of other programs the tests run (their own formats and their own errors).
OTHER_PROGRAMS = frozenset({"postgres.log", "redis.log", "traefik.log"})

#: How many lines after a marker make up its report (the traceback and its exception line).
BLOCK_LINES = 80


@dataclass(frozen=True)
class Allowance:
    """An unhandled exception a test provokes on purpose and the code cannot avoid logging."""

    file: str  #: fnmatch pattern on the log's path relative to the base temporary directory
    message: str  #: regular expression searched in the exception's block
    reason: str


ALLOWED: tuple[Allowance, ...] = (
    Allowance(
        file="*.log",
        message=r"_finalize_fairy[\s\S]*asyncio\.exceptions\.CancelledError",
        reason="A task cancelled while it holds a database connection (a control plane stopped "
        "with SIGTERM while its reconciler works, or a request whose client hung up, as the "
        "fuzzers and Schemathesis do) leaves SQLAlchemy's pool to roll that connection back as "
        "it is discarded, and the cancelled rollback is logged by SQLAlchemy's own pool logger "
        "('Exception during reset or similar'). Nothing is lost: the transaction was not "
        "committed, and the database rolls back on close. Seen in the crash test under a CPU "
        "hog and in Schemathesis' control plane (2026-12-07); allowed in any log since only this "
        "pool finaliser's cancelled reset matches.",
    ),
)


@dataclass(frozen=True)
class Finding:
    path: Path
    line: int  #: 1-based
    text: str
    exception: str
    trace: tuple[str, ...] = ()  #: the traceback's lines, to its exception line

    def report(self, root: Path, *, whole: bool = False) -> str:
        where = self.path.relative_to(root) if self.path.is_relative_to(root) else self.path
        head = f"  {where}:{self.line}: {self.text.strip()[:300]}"
        if whole and len(self.trace) > 1:
            # The whole traceback: the log itself may be gone when someone reads this (pytest
            # keeps only its last few base temporary directories).
            return "\n".join([head, *(f"      {line[:300]}" for line in self.trace[1:])])
        detail = f"\n      {self.exception}" if self.exception else ""
        return f"{head}{detail}"


def _exception_line(block: list[str]) -> str:
    """The ``Type: message`` line that ends the first traceback in ``block`` (or "")."""
    in_traceback = False
    for line in block:
        if "Traceback (most recent call last)" in line:
            in_traceback = True
            continue
        if in_traceback and line.strip() and not line.startswith((" ", "\t", "^", "~")):
            return line.strip()[:300]
    return ""


def allowed(finding: Finding, block: str, root: Path) -> bool:
    relative = str(finding.path.relative_to(root)) if finding.path.is_relative_to(root) else ""
    return any(fnmatch.fnmatch(relative, a.file) and re.search(a.message, block) for a in ALLOWED)


def unhandled_exceptions(root: Path) -> list[Finding]:
    """Every marked line of every log under ``root`` that no allowance covers."""
    found: list[Finding] = []
    for path in sorted(root.rglob("*.log")):
        if path.name in OTHER_PROGRAMS or not path.is_file():
            continue
        lines = path.read_text(errors="replace").splitlines()
        skip_to = 0
        for index, line in enumerate(lines):
            if index < skip_to or not any(marker in line for marker in MARKERS):
                continue
            block = lines[index : index + BLOCK_LINES]
            exception = _exception_line(block)
            # One report per traceback: its chained "During handling ..." tracebacks and the
            # exception line belong to it.
            end = next(
                (
                    i
                    for i, text in enumerate(block)
                    if i > 0 and exception and text.strip() == exception
                ),
                0,
            )
            finding = Finding(path, index + 1, line, exception, tuple(block[: end + 1]))
            skip_to = index + end + 1
            if not allowed(finding, "\n".join(block), root):
                found.append(finding)
    return found


def report(findings: list[Finding], root: Path, *, limit: int = 40, whole: int = 3) -> str:
    """The failure message: each finding's file, line and exception; the first ``whole`` in full."""
    files = len({f.path for f in findings})
    head = f"unhandled exceptions in the logs under {root} ({len(findings)} in {files} files):"
    more = len(findings) - limit
    tail = [f"  ... and {more} more"] if more > 0 else []
    shown = (f.report(root, whole=i < whole) for i, f in enumerate(findings[:limit]))
    return "\n".join([head, *shown, *tail])
