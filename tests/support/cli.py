"""Running the ``orgplane`` CLI in-process.

* :func:`run_cli`: from an async test whose event loop serves the control plane: in a thread
  (its HTTP calls are synchronous), output captured by ``capsys``.
* :func:`logged_in_cli` and :func:`run`: against the control-plane app through its test client
  (no server process or port), the CLI logged in.
"""

from __future__ import annotations

import asyncio
import io
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient

from control_plane.app import create_app
from control_plane.cli import session as cli_session
from control_plane.cli.main import main
from control_plane.settings import Settings
from tests.support.api import PASSWORD

URL = "http://127.0.0.1:8080"


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


@contextmanager
def logged_in_cli(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, email: str
) -> Iterator[TestClient[Any]]:
    """The app, and the CLI's HTTP client pointed at it; the CLI logged in as ``email``."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    with TestClient(create_app(settings), base_url=URL) as client:
        fake = SimpleNamespace(Client=lambda **_: client, TransportError=httpx.TransportError)
        monkeypatch.setattr(cli_session, "httpx", fake)
        monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
        assert main(["login", "--url", URL, "--email", email, "--password-stdin"]) == 0
        yield client


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the CLI; its exit code, standard output and standard error."""
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err
