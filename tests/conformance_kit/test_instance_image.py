"""orgplane's own instance image passes every clause of the conformance kit."""

from __future__ import annotations

import pytest

from conformance_kit import Report, run_conformance

pytestmark = [pytest.mark.docker, pytest.mark.slow]

#: Every clause a run against an image checks (without Redis): a run that skipped one would
#: not be a pass.
IMAGE_CLAUSES = [
    "image.labels",
    "probes.healthz",
    "probes.readyz",
    "tokens.valid",
    "tokens.missing",
    "tokens.forged",
    "tokens.expired",
    "tokens.not-yet-valid",
    "tokens.wrong-org",
    "tokens.wrong-issuer",
    "tokens.alg-none",
    "tokens.alg-hs256",
    "host.own",
    "host.foreign",
    "heartbeat.arrival",
    "heartbeat.credential",
    "heartbeat.schema",
    "heartbeat.interval",
    "heartbeat.backoff",
    "heartbeat.recovery",
    "restart.data-kept",
    "restart.heartbeats",
    "stop.graceful",
]


@pytest.fixture(scope="module")
def report(instance_image: str) -> Report:
    """One run of the kit against the image, shared by the module's tests."""
    return run_conformance(image=instance_image)


def test_orgplane_instance_passes_every_clause(report: Report) -> None:
    assert [r.clause for r in report.results] == IMAGE_CLAUSES, report.table()
    assert report.ok, report.table()
    assert report.failed == []


def test_the_report_shows_its_evidence(report: Report) -> None:
    table = report.table()
    assert f"{len(IMAGE_CLAUSES)}/{len(IMAGE_CLAUSES)} clauses passed" in table
    # Evidence names what came back, e.g. the 421 a foreign Host got and the exit status.
    assert "-> 421" in report.results[IMAGE_CLAUSES.index("host.foreign")].evidence
    assert "status 0" in report.results[IMAGE_CLAUSES.index("stop.graceful")].evidence
    body = report.as_dict()
    assert body["ok"] is True
    assert {r["clause"] for r in body["results"]} == set(IMAGE_CLAUSES)
