"""orgplane's own instance image passes every clause of the conformance kit, the Redis
namespace included (a Redis in a container, the org's ACL user made by the kit)."""

from __future__ import annotations

import pytest

from conformance_kit import Report, run_conformance
from tests.conformance_kit.conftest import ContainerRedis

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


WITH_REDIS = [*IMAGE_CLAUSES[:20], "redis.namespace", *IMAGE_CLAUSES[20:]]


@pytest.fixture(scope="module")
def report(instance_image: str, container_redis: ContainerRedis) -> Report:
    """One run of the kit against the image, shared by the module's tests."""
    return run_conformance(
        image=instance_image,
        redis_url=container_redis.admin_url,
        redis_host=container_redis.instance_host,
        redis_network=container_redis.network,
    )


def test_orgplane_instance_passes_every_clause(report: Report) -> None:
    assert [r.clause for r in report.results] == WITH_REDIS, report.table()
    assert report.ok, report.table()
    assert report.failed == []


def test_the_report_shows_its_evidence(report: Report) -> None:
    table = report.table()
    assert f"{len(WITH_REDIS)}/{len(WITH_REDIS)} clauses passed" in table
    # Evidence names what came back, e.g. the 421 a foreign Host got and the exit status.
    assert "-> 421" in report.results[WITH_REDIS.index("host.foreign")].evidence
    assert "status 0" in report.results[WITH_REDIS.index("stop.graceful")].evidence
    body = report.as_dict()
    assert body["ok"] is True
    assert {r["clause"] for r in body["results"]} == set(WITH_REDIS)
    redis = report.results[WITH_REDIS.index("redis.namespace")].evidence
    assert "redis_ok=True" in redis
    assert "0 refusals in ACL LOG" in redis
