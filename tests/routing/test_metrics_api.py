"""The control plane's ``/metrics`` (metrics token) and the Prometheus service discovery of the
instances (routing token), in process; ``tests/integration/test_prometheus.py`` scrapes them
with a real Prometheus."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families

from control_plane.app import create_app
from control_plane.db.models import Instance, Org, utcnow
from tests.routing.helpers import ROUTING_TOKEN, add_org
from tests.support.api import add_user, assert_problem, direct_db, login
from tests.support.tokens import exchange, make_org

METRICS_TOKEN = "metrics-token-for-tests-only"
SCRAPE = {"Authorization": f"Bearer {METRICS_TOKEN}"}
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_metrics_need_the_token_and_count_bounded_series(make_settings: Any) -> None:
    settings = make_settings(ORGPLANE_METRICS_TOKEN=METRICS_TOKEN)
    async with AsyncTestClient(create_app(settings), base_url="http://127.0.0.1:8080") as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": METRICS_TOKEN}):
            answer = await client.get("/metrics", headers=headers)
            assert_problem(answer, 401, "invalid_metrics_token")
            assert "orgplane_" not in answer.text
            assert METRICS_TOKEN not in answer.text
        user = await add_user(client, "ann@example.com")
        org_id = await make_org(client, "acme", members={user: "member"})
        headers = await login(client, "ann@example.com")
        assert (await client.get(f"/api/v1/orgs/{org_id}", headers=headers)).status_code == 200
        access = headers["Authorization"].removeprefix("Bearer ")
        issued = await exchange(client, access, audience=f"urn:orgplane:org:{org_id}")
        assert issued.status_code == 200, issued.text
        refused = await exchange(client, "not-a-token", audience=f"urn:orgplane:org:{org_id}")
        assert refused.status_code in (400, 401)
        reason = refused.json()["error"]
        async with direct_db(client) as db:
            db.add(Org(slug="beta", name="Beta", phase="running"))
            db.add(Instance(org_id=org_id, provisioner="local", endpoint="http://127.0.0.1:9"))
            org = await db.get(Org, org_id)
            assert org is not None
            org.phase = "running"
            instance = await db.get(Instance, org_id)
            assert instance is not None
            instance.version, instance.last_heartbeat_at = "1.2.3", utcnow() - timedelta(seconds=42)
            await db.commit()
        answer = await client.get("/metrics", headers=SCRAPE)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert answer.headers["cache-control"] == "no-store"
    found = samples(answer.text)
    route = (("method", "GET"), ("route", "/api/v1/orgs/{org_ref}"))
    assert found[("orgplane_http_request_duration_seconds_count", route)] == 1
    assert found[("orgplane_http_requests_total", (*route, ("status", "200")))] == 1
    # The latency histogram carries no status (the counter does), and no `_created` samples.
    assert not any(
        name.startswith("orgplane_http_request_duration") and "status" in dict(labels)
        for name, labels in found
    )
    assert not any(name.endswith("_created") for name, _ in found)
    assert org_id not in answer.text, "an org id in metric labels"
    assert user not in answer.text, "a user id in metric labels"
    tokens = "orgplane_token_requests_total"
    issued_key = (("grant", "token_exchange"), ("outcome", "issued"), ("reason", ""))
    assert found[(tokens, issued_key)] == 1
    refused_key = (("grant", "token_exchange"), ("outcome", "refused"), ("reason", reason))
    assert found[(tokens, refused_key)] == 1
    assert found[("orgplane_orgs", (("phase", "running"),))] == 2
    assert found[("orgplane_instances_by_version", (("version", "1.2.3"),))] == 1
    assert 42 <= found[("orgplane_heartbeat_lag_max_seconds", ())] < 120


async def test_service_discovery_lists_serving_instances(make_settings: Any) -> None:
    settings = make_settings(ORGPLANE_ROUTING_TOKEN=ROUTING_TOKEN)
    url = "/api/v1/routing/prometheus"
    async with AsyncTestClient(create_app(settings), base_url="http://127.0.0.1:8080") as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            assert_problem(await client.get(url, headers=headers), 401, "invalid_routing_token")
        acme = await add_org(client, "acme", endpoint="http://10.1.0.7:8000", plan="pro")
        bare = await add_org(client, "bare", endpoint="127.0.0.1:8001", plan="free")
        await add_org(client, "asleep", endpoint="http://10.1.0.8:8000", phase="hibernated")
        await add_org(client, "held", endpoint="http://10.1.0.9:8000", suspended=True)
        await add_org(client, "nowhere")
        async with direct_db(client) as db:
            instance = await db.get(Instance, acme)
            assert instance is not None
            instance.version = "2.0.0"
            await db.commit()
        answer = await client.get(url, headers={"Authorization": f"Bearer {ROUTING_TOKEN}"})
    assert answer.status_code == 200
    assert answer.json() == [
        {
            "targets": ["10.1.0.7:8000"],
            "labels": {
                "org_id": acme,
                "org_slug": "acme",
                "plan": "pro",
                "version": "2.0.0",
                "__scheme__": "http",
            },
        },
        {
            "targets": ["127.0.0.1:8001"],
            "labels": {
                "org_id": bare,
                "org_slug": "bare",
                "plan": "free",
                "version": "unknown",
                "__scheme__": "http",
            },
        },
    ]


async def test_metrics_are_gzipped_only_for_a_scraper_that_asks(make_settings: Any) -> None:
    settings = make_settings(ORGPLANE_METRICS_TOKEN=METRICS_TOKEN)
    async with AsyncTestClient(create_app(settings), base_url="http://127.0.0.1:8080") as client:
        zipped = await client.get("/metrics", headers={**SCRAPE, "Accept-Encoding": "gzip"})
        plain = await client.get("/metrics", headers={**SCRAPE, "Accept-Encoding": "identity"})
    assert zipped.status_code == plain.status_code == 200
    assert zipped.headers["content-encoding"] == "gzip"
    assert "content-encoding" not in plain.headers
    assert zipped.headers["vary"] == plain.headers["vary"] == "Accept-Encoding"
    # httpx decoded the gzip body: both parse to the same families.
    assert {f.name for f in text_string_to_metric_families(zipped.text)} == {
        f.name for f in text_string_to_metric_families(plain.text)
    }
    assert int(zipped.headers["content-length"]) < len(zipped.content)
