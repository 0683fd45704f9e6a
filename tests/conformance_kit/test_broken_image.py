"""A deliberately broken instance fails exactly the clauses it breaks, with a clear report and a
non-zero exit status from ``orgplane conformance``."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conformance_kit import run_conformance
from tests.conformance_kit.conftest import ContainerRedis
from tests.conformance_kit.test_instance_image import IMAGE_CLAUSES, WITH_REDIS

pytestmark = [pytest.mark.docker, pytest.mark.slow]

HEARTBEAT_CLAUSES = [c for c in IMAGE_CLAUSES if c.startswith("heartbeat.")] + [
    "restart.heartbeats"
]


def test_each_fault_fails_its_own_clauses_and_no_other(
    broken_image: str, container_redis: ContainerRedis
) -> None:
    """Five faults in one run (one container), each failing its own clauses: another org's
    token accepted, heartbeats at a fixed 1.2 s (the answer's 0.5 s ignored, no backoff through
    a 4 s outage), a key outside the namespace, the data directory emptied at start, SIGTERM
    ignored (with a 3 s deadline, to keep the test short)."""
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "control_plane.cli.main",
            "conformance",
            "--image",
            broken_image,
            "--env",
            "BROKEN_MODE=accept-any-org,fixed-interval,outside-namespace,wipe-data,ignore-sigterm",
            "--stop-deadline",
            "3",
            "--env",
            "ORGPLANE_HEARTBEAT_INTERVAL=1.2",
            "--outage",
            "4",
            "--redis",
            container_redis.admin_url,
            "--redis-host",
            container_redis.instance_host,
            "--redis-network",
            container_redis.network,
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
    assert body["failed"] == [
        "tokens.wrong-org",
        "heartbeat.interval",
        "heartbeat.backoff",
        "heartbeat.recovery",
        "redis.namespace",
        "restart.data-kept",
        "stop.graceful",
    ], run.stdout
    wrong_org = next(r for r in body["results"] if r["clause"] == "tokens.wrong-org")
    assert "another org's token" in wrong_org["evidence"]
    assert wrong_org["evidence"].endswith("-> 200")
    evidence = {r["clause"]: r["evidence"] for r in body["results"]}
    assert "1 refusals in ACL LOG (key:broken-outside)" in evidence["redis.namespace"]
    assert evidence["restart.data-kept"].startswith("marker LOST; 1 files of the instance before")
    assert evidence["stop.graceful"] == "still running 3 s after SIGTERM (killed)"
    # Everything else it does right is reported as such.
    assert [r["clause"] for r in body["results"]] == WITH_REDIS


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


def test_a_container_that_cannot_start_is_reported_with_its_log(broken_image: str) -> None:
    report = run_conformance(
        image=broken_image, env_extra={"BROKEN_MODE": "crash"}, start_timeout=5
    )
    assert report.failed == [
        "probes.healthz",
        "probes.readyz",
        "tokens",
        "host",
        "container.running",
    ]
    stopped = report.results[-1].evidence
    assert "last exit status 3" in stopped, report.table()
    assert "broken instance: crashing on purpose" in report.table()
