"""``orgplane conformance --url``: the clauses that need no container (probes, tokens, Host)
against a server already running, configured with the environment the kit prints."""

from __future__ import annotations

import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from conformance_kit import run_conformance
from conformance_kit.cli import cmd_conformance, register
from tests.conformance_kit.helpers import free_port_in_range
from tests.instance.processes import child_env, stop
from tests.support.services import REPO
from tests.support.wait import wait_http

pytestmark = pytest.mark.slow

ORG_ID = "url-mode-org"


def printed_env(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, str]:
    """The environment ``orgplane conformance --url ... --print-env`` prints."""
    import argparse

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    assert cmd_conformance(parser.parse_args(["conformance", *args, "--print-env"])) == 0
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "Start the server with:"
    return dict(line.strip().split("=", 1) for line in lines[1:])


def start_instance(tmp_path: Path, env: dict[str, str], jwks_port: int, port: int) -> Any:
    """orgplane's instance as a process, configured with what the kit printed."""
    log = tmp_path / "instance.log"
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "org_instance"],
            cwd=REPO,
            env=child_env(
                **env,
                ORGPLANE_INSTANCE_ID="url-mode",
                ORGPLANE_CONTROL_PLANE_URL=f"http://127.0.0.1:{jwks_port}",
                ORGPLANE_INSTANCE_CREDENTIAL="url-mode-credential-0123456789",
                ORGPLANE_REDIS_NAMESPACE=f"org:{ORG_ID}",
                ORGPLANE_DATA_DIR=str(tmp_path / "data"),
                ORGPLANE_BIND_HOST="127.0.0.1",
                ORGPLANE_PORT=str(port),
                ORGPLANE_HEARTBEAT_INTERVAL="30",
            ),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def test_a_running_server_is_checked_over_http(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jwks_port = free_port_in_range()
    with socket.socket() as holder:  # keep jwks_port taken while the second one is chosen
        holder.bind(("127.0.0.1", jwks_port))
        port = free_port_in_range()
    url = f"http://127.0.0.1:{port}"
    env = printed_env(capsys, "--url", url, "--org-id", ORG_ID, "--jwks-port", str(jwks_port))
    assert env["ORGPLANE_AUDIENCE"] == f"urn:orgplane:org:{ORG_ID}"
    # As docs/conformance.md says: the kit first (it serves the JWKS and waits for the server's
    # probes), then the server, which fetches the kit's keys when it starts.
    with ThreadPoolExecutor(1) as pool:
        run = pool.submit(run_conformance, url=url, org_id=ORG_ID, jwks_port=jwks_port)
        wait_http(env["ORGPLANE_JWKS_URL"])
        proc = start_instance(tmp_path, env, jwks_port, port)
        try:
            report = run.result(timeout=180)
        finally:
            stop(proc)
    clauses = [r.clause for r in report.results]
    assert clauses[:3] == ["probes.healthz", "probes.readyz", "tokens.valid"], report.table()
    assert {"tokens.wrong-org", "tokens.alg-none", "host.foreign"} <= set(clauses)
    assert not any(c.startswith(("heartbeat.", "restart.", "stop.")) for c in clauses)
    assert report.ok, report.table()


def test_a_url_run_needs_the_org_and_the_jwks_port(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["conformance", "--url", "http://127.0.0.1:9"])
    assert cmd_conformance(args) == 2
    assert "--url needs --org-id and --jwks-port" in capsys.readouterr().err
    with pytest.raises(ValueError, match="jwks_port"):
        run_conformance(url="http://127.0.0.1:9", org_id=ORG_ID)
