"""The end-of-session log scan finds unhandled exceptions, and only those it is not told to allow.

The logs these tests write hold tracebacks on purpose, so they live outside the session's base
temporary directory (which the real scan reads).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import logscan

TRACEBACK = """\
2026-12-07T05:00:00Z [info     ] request status=200
Exception in ASGI application
Traceback (most recent call last):
  File "x.py", line 1, in f
    raise ValueError("boom")
ValueError: boom
2026-12-07T05:00:01Z [info     ] request status=200
"""


@pytest.fixture
def logs() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="orgplane-logscan-") as directory:
        yield Path(directory)


def test_a_traceback_is_reported_once_with_its_file_line_and_exception(logs: Path) -> None:
    (logs / "popen-gw0" / "cp").mkdir(parents=True)
    (logs / "popen-gw0" / "cp" / "cp.log").write_text(TRACEBACK)
    (logs / "quiet.log").write_text("all well\n")
    (logs / "postgres.log").write_text("Traceback (most recent call last): not ours\n")
    findings = logscan.unhandled_exceptions(logs)
    assert [(f.path.name, f.line, f.exception) for f in findings] == [
        ("cp.log", 2, "ValueError: boom")
    ]
    shown = logscan.report(findings, logs)
    assert "popen-gw0/cp/cp.log:2: Exception in ASGI application" in shown
    # The whole traceback is in the report: the log may be gone by the time someone reads it.
    assert 'raise ValueError("boom")' in shown
    assert "ValueError: boom" in logscan.report(findings, logs)


def test_an_allowance_covers_only_its_file_and_message(
    logs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (logs / "a").mkdir()
    (logs / "a" / "instance.log").write_text(TRACEBACK)
    (logs / "a" / "server.log").write_text(TRACEBACK)
    (logs / "a" / "other.log").write_text(TRACEBACK.replace("boom", "bang"))
    allowance = logscan.Allowance("*/instance.log", r"ValueError: boom", "provoked")
    monkeypatch.setattr(logscan, "ALLOWED", (allowance,))
    found = {f.path.name for f in logscan.unhandled_exceptions(logs)}
    assert found == {"server.log", "other.log"}
