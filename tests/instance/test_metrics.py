"""An instance's ``/metrics``: requests by route template, WebSocket clients, SQLite size, Redis
errors; open on the instance's own port, refused to requests that came through a proxy."""

from __future__ import annotations

from pathlib import Path

from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families

from org_instance.app import create_app
from tests.instance.helpers import FakeControlPlane, Signer, bearer, instance_config


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, by name and sorted labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_instance_metrics_count_by_route_template(
    tmp_path: Path, signer: Signer, cp: FakeControlPlane
) -> None:
    config = instance_config(tmp_path)
    org = config.org_id
    app = create_app(config, http=cp.client())
    with TestClient(app, base_url="http://acme.orgplane.test") as client:
        who = bearer(signer.token(org))
        sids = [client.post("/api/v1/sessions", headers=who, json={}).json()["id"] for _ in "ab"]
        for sid in sids:
            assert client.get(f"/api/v1/sessions/{sid}", headers=who).status_code == 200
        assert client.get("/api/v1/sessions/nope", headers={}).status_code == 401
        url = f"/api/v1/sessions/{sids[0]}/events?access_token={signer.token(org)}"
        with client.websocket_connect(url):
            during = samples(client.get("/metrics").text)
        after = client.get("/metrics")
        assert after.status_code == 200
        assert after.headers["content-type"].startswith("text/plain")
        found = samples(after.text)

    count = "orgplane_instance_http_request_duration_seconds_count"
    template = "/api/v1/sessions/{session_id}"
    assert found[(count, (("method", "GET"), ("route", template), ("status", "200")))] == 2
    assert found[(count, (("method", "GET"), ("route", template), ("status", "401")))] == 1
    assert found[(count, (("method", "POST"), ("route", "/api/v1/sessions"), ("status", "201")))]
    routes = {dict(labels).get("route", "") for _, labels in found}
    assert not any(sid in route for sid in sids for route in routes), "raw paths leaked"
    assert during[("orgplane_instance_websocket_clients", ())] == 1
    assert found[("orgplane_instance_websocket_clients", ())] == 0
    assert found[("orgplane_instance_sqlite_bytes", (("file", "main"),))] >= 4096  # a page
    assert ("orgplane_instance_redis_errors_total", (("operation", "ping"),)) not in found


def test_metrics_are_refused_through_a_proxy_and_count_redis_errors(
    tmp_path: Path, cp: FakeControlPlane
) -> None:
    # A Redis nobody listens on: /readyz fails its ping and the error is counted.
    config = instance_config(tmp_path, redis_url="redis://127.0.0.1:1/0")
    app = create_app(config, http=cp.client())
    with TestClient(app, base_url="http://acme.orgplane.test") as client:
        for header in ("X-Forwarded-For", "X-Forwarded-Host", "X-Real-IP", "Forwarded"):
            refused = client.get("/metrics", headers={header: "203.0.113.9"})
            assert refused.status_code == 404
            assert refused.headers["content-type"] == "application/problem+json"
            assert "orgplane_" not in refused.text
        assert client.get("/readyz").status_code == 503
        found = samples(client.get("/metrics").text)
    assert found[("orgplane_instance_redis_errors_total", (("operation", "ping"),))] >= 1
