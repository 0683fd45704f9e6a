"""Waiting for something to happen, the one way the tests do it.

A test that needs an event (a process listening, a row written, a phase reached) polls for that
event with a generous bound, never sleeps a fixed time: a fixed sleep is too short on a busy CI
machine and wasted time everywhere else. The bound is there so a broken build fails instead of
hanging; it is not a speed check (speed is measured in ``benchmarks/``).

- :func:`eventually` (async) and :func:`wait_until` (sync) call ``check`` until it returns a
  truthy value and return that value; past ``timeout`` they raise :class:`WaitTimeout` naming
  ``what`` and the last value seen.
- :func:`wait_http` waits until a URL answers 200 (optionally while a process must stay alive).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

T = TypeVar("T")

#: How long a test waits for an event by default: long enough for a loaded 2-core CI machine.
DEFAULT_TIMEOUT = 60.0


class WaitTimeout(AssertionError):
    """What a test waited for did not happen within its bound."""


async def eventually(
    check: Callable[[], Awaitable[T]] | Callable[[], T],
    *,
    what: str,
    timeout: float = DEFAULT_TIMEOUT,
    interval: float = 0.05,
) -> T:
    """Await ``check()`` (a coroutine function or a plain one) until it is truthy; return it."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = check()
        if inspect.isawaitable(last):
            last = await last
        if last:
            return last  # type: ignore[no-any-return]
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"{what}: not within {timeout:g} s (last seen: {last!r})")
        await asyncio.sleep(interval)


def wait_until(
    check: Callable[[], T],
    *,
    what: str,
    timeout: float = DEFAULT_TIMEOUT,
    interval: float = 0.05,
) -> T:
    """Call ``check()`` until it is truthy; return it (the synchronous :func:`eventually`)."""
    deadline = time.monotonic() + timeout
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"{what}: not within {timeout:g} s (last seen: {last!r})")
        time.sleep(interval)


def wait_http(
    url: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    proc: subprocess.Popen[bytes] | None = None,
    headers: dict[str, str] | None = None,
    log: Path | None = None,
) -> None:
    """Wait until ``url`` answers 200. If ``proc`` exits first, fail at once with its exit code
    and the end of ``log`` (its output), rather than waiting out the bound; a timeout shows the
    end of ``log`` too."""

    def tail() -> str:
        return log.read_text(errors="replace")[-3000:] if log and log.exists() else ""

    def answers() -> bool:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url}:\n{tail()}")
        try:
            return httpx.get(url, timeout=2.0, headers=headers).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(answers, what=f"{url} answering 200", timeout=timeout, interval=0.05)
    except WaitTimeout as exc:
        if log is None:
            raise
        raise WaitTimeout(f"{exc}\n{tail()}") from None


def children_done_with_exec() -> bool:
    """Whether every live child of this process has finished ``exec``.

    ``subprocess.Popen`` returns once the child's close-on-exec pipe closes, which happens in
    the middle of ``execve``: for a moment after that the child's ``/proc/PID/cmdline`` reads
    empty, so a look-up by command line misses a process that was just started. Linux only
    (elsewhere: True).
    """
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    me = str(os.getpid())
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            if fields[1] != me or fields[0] == "Z":
                continue
            if not (entry / "cmdline").read_bytes():
                return False
        except (OSError, ValueError):
            continue
    return True
