"""Starting the server: ``orgplane instance`` serves an org; a bad environment exits 2."""

from __future__ import annotations

import shutil
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from control_plane.cli.main import main as cli_main
from tests.instance.processes import child_env, free_port, stop
from tests.support.services import REPO
from tests.support.wait import wait_http


def test_a_bad_environment_exits_2_naming_every_problem(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key in ("ORGPLANE_ORG_ID", "ORGPLANE_DATA_DIR", "ORGPLANE_INSTANCE_CREDENTIAL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("ORGPLANE_LIMITS", '{"max_sessions": "many"}')
    assert cli_main(["instance"]) == 2
    err = capsys.readouterr().err
    for name in (
        "ORGPLANE_ORG_ID",
        "ORGPLANE_DATA_DIR",
        "ORGPLANE_INSTANCE_CREDENTIAL",
        "max_sessions",
    ):
        assert name in err


def test_orgplane_instance_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    executable = shutil.which("orgplane") or str(REPO / ".venv" / "bin" / "orgplane")
    port = free_port()
    env = child_env(
        ORGPLANE_ORG_ID="org-cli",
        ORGPLANE_INSTANCE_CREDENTIAL="opi_org-cli.0123456789abcdef",
        ORGPLANE_DATA_DIR=str(tmp_path),
        ORGPLANE_JWKS_URL="http://127.0.0.1:9/jwks",
        ORGPLANE_ISSUER="http://127.0.0.1:9",
        ORGPLANE_BIND_HOST="127.0.0.1",
        ORGPLANE_PORT=str(port),
    )
    proc = subprocess.Popen(
        [executable, "instance"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", proc=proc)
        answer = httpx.get(f"http://127.0.0.1:{port}/api/v1/me")
        assert answer.status_code == 401
        assert answer.json()["code"] == "invalid_token"
        assert (tmp_path / "instance.db").exists()
    finally:
        stop(proc)
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status says why.
    assert proc.returncode in (0, -signal.SIGTERM)
    assert proc.stderr is not None
    assert b"Traceback" not in proc.stderr.read()
