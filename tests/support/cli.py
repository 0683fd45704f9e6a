"""Running the ``orgplane`` CLI in-process from an async test whose event loop serves the
control plane: in a thread (its HTTP calls are synchronous), output captured by ``capsys``."""

from __future__ import annotations

import asyncio
import io
import sys

import pytest

from control_plane.cli.main import main


async def run_cli(
    capsys: pytest.CaptureFixture[str], *argv: str, stdin: str = ""
) -> tuple[int, str, str]:
    """``orgplane argv`` with ``stdin``: (exit code, stdout, stderr); never a traceback."""
    sys.stdin = io.StringIO(stdin)
    try:
        code = await asyncio.to_thread(main, list(argv))
    finally:
        sys.stdin = sys.__stdin__
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err
