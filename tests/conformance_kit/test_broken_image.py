"""A deliberately broken instance fails exactly the clauses it breaks, with a clear report and a
non-zero exit status from ``orgplane conformance``."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conformance_kit import run_conformance
from tests.conformance_kit.test_instance_image import IMAGE_CLAUSES

pytestmark = [pytest.mark.docker, pytest.mark.slow]

HEARTBEAT_CLAUSES = [c for c in IMAGE_CLAUSES if c.startswith("heartbeat.")] + [
    "restart.heartbeats"
]


def test_accepting_another_orgs_token_fails_the_wrong_org_clause(broken_image: str) -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "control_plane.cli.main",
            "conformance",
            "--image",
            broken_image,
            "--env",
            "BROKEN_MODE=accept-any-org",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 1, run.stderr
    body = json.loads(run.stdout)
    assert body["ok"] is False
    assert body["failed"] == ["tokens.wrong-org"], run.stdout
    wrong_org = next(r for r in body["results"] if r["clause"] == "tokens.wrong-org")
    assert "another org's token" in wrong_org["evidence"]
    assert wrong_org["evidence"].endswith("-> 200")
    # Everything else it does right is reported as such.
    assert [r["clause"] for r in body["results"]] == IMAGE_CLAUSES


def test_never_heartbeating_fails_the_heartbeat_clauses(broken_image: str) -> None:
    report = run_conformance(
        image=broken_image, env_extra={"BROKEN_MODE": "no-heartbeat"}, first_beat_timeout=8
    )
    assert report.failed == HEARTBEAT_CLAUSES, report.table()
    table = report.table()
    assert "no heartbeat within 8 s" in table
    assert f"FAILED: {', '.join(HEARTBEAT_CLAUSES)}" in table
    # The instance's log is attached to a failing report.
    assert "broken instance (mode no-heartbeat) start 2" in table
