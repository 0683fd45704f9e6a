"""Reading an instance's log: lines out of byte chunks, blocking SDK streams pumped off the event
loop, and the local log file (tail, since, follow). Shared by the backends' ``logs``."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

#: A line longer than this is cut (a runaway line must not become a runaway answer).
MAX_LINE_CHARS: Final = 8192
#: How often a followed log file is checked for new output.
FOLLOW_POLL_SECONDS: Final = 0.2
_BLOCK: Final = 64 * 1024


def _line(raw: bytes) -> str:
    return raw.rstrip(b"\r").decode(errors="replace")[:MAX_LINE_CHARS]


async def lines_of(chunks: AsyncIterator[bytes]) -> AsyncIterator[str]:
    """Lines (without their newline, cut at :data:`MAX_LINE_CHARS`) out of byte chunks."""
    pending = b""
    async for chunk in chunks:
        pending += chunk
        *whole, pending = pending.split(b"\n")
        for raw in whole:
            yield _line(raw)
        if len(pending) > 4 * MAX_LINE_CHARS:  # a line without end: pass on what is kept
            yield _line(pending)
            pending = b""
    if pending:
        yield _line(pending)


async def pumped(blocking: Iterator[bytes], close: Callable[[], object]) -> AsyncIterator[bytes]:
    """The chunks of a blocking iterator (an SDK's log stream), each read in a thread; ``close``
    (which unblocks a read waiting for output) runs however the iteration ends. It runs on the
    loop, not awaited: closing a socket does not block, and a cancelled consumer (a client that
    went away) may not get to await anything more."""
    done = object()
    try:
        while True:
            chunk = await asyncio.to_thread(next, blocking, done)
            if chunk is done:
                return
            if isinstance(chunk, str):
                chunk = chunk.encode()
            yield chunk  # type: ignore[misc]
    finally:
        close()


def line_time(line: str) -> datetime | None:
    """When an instance logged ``line``: the ``timestamp`` of a JSON line, or the ISO time a
    console line starts with; None when it has none (a continuation, such as a traceback)."""
    text = line.lstrip()
    stamp = ""
    if text.startswith("{"):
        try:
            value = json.loads(text).get("timestamp", "")
        except (ValueError, AttributeError):
            value = ""
        stamp = value if isinstance(value, str) else ""
    elif text[:1].isdigit():
        stamp = text.split(" ", 1)[0]
    if not stamp:
        return None
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _since_filter(lines: list[str], since: datetime | None, *, keeping: bool) -> list[str]:
    """The lines logged at or after ``since``; a line without a time goes with the one above it
    (``keeping``: whether that one, before the first of ``lines``, was kept)."""
    if since is None:
        return lines
    kept = []
    for line in lines:
        when = line_time(line)
        if when is not None:
            keeping = when >= since
        if keeping:
            kept.append(line)
    return kept


def _tail_lines(path: Path, tail: int, since: datetime | None) -> tuple[list[str], int]:
    """The last ``tail`` lines of the file (logged since ``since``), and the size read up to.
    Reads backwards block by block, so a large log costs only what is shown."""
    try:
        fh = path.open("rb")
    except FileNotFoundError:
        return [], 0
    with fh:
        end = fh.seek(0, os.SEEK_END)
        position, data = end, b""
        while position > 0:
            step = min(_BLOCK, position)
            position -= step
            fh.seek(position)
            data = fh.read(step) + data
            lines = data.split(b"\n")
            complete = lines[1:] if position > 0 else lines
            decoded = [_line(raw) for raw in complete if raw.strip()]
            if len(decoded) > tail:
                oldest = line_time(decoded[-tail - 1]) if since is not None else None
                if since is None or (oldest is not None and oldest < since):
                    break
        raw_lines = data.split(b"\n")
        if position > 0:
            raw_lines = raw_lines[1:]
        decoded = [_line(raw) for raw in raw_lines if raw.strip()]
    shown = _since_filter(decoded, since, keeping=position == 0)
    return (shown[-tail:] if tail else []), end


async def file_lines(
    path: Path, *, since: datetime | None, tail: int | None, follow: bool
) -> AsyncIterator[str]:
    """The lines of a log file: the last ``tail`` (every one when None) logged since ``since``,
    then, with ``follow``, each line appended after (a file truncated or replaced, as a restart
    may do, is read again from its start)."""
    if tail is None:
        text = await asyncio.to_thread(_read_all, path)
        lines = _since_filter(
            [_line(r) for r in text.split(b"\n") if r.strip()], since, keeping=True
        )
        offset = len(text)
    else:
        lines, offset = await asyncio.to_thread(_tail_lines, path, tail, since)
    for line in lines:
        yield line
    if not follow:
        return
    identity = _identity(path)
    pending = b""
    while True:
        await asyncio.sleep(FOLLOW_POLL_SECONDS)
        now = _identity(path)
        size = now[1] if now else 0
        if now is None or identity is None or now[0] != identity[0] or size < offset:
            offset, pending = 0, b""  # replaced or truncated
        identity = now
        if size <= offset:
            continue
        chunk = await asyncio.to_thread(_read_from, path, offset, size)
        offset += len(chunk)
        pending += chunk
        *whole, pending = pending.split(b"\n")
        for raw in whole:
            if raw.strip():
                yield _line(raw)


def _read_all(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_size


def _read_from(path: Path, offset: int, size: int) -> bytes:
    with path.open("rb") as fh:
        fh.seek(offset)
        return fh.read(min(size - offset, 4 * _BLOCK))
