"""The chart's ServiceMonitor option: off by default; on, it scrapes the control plane's Service
port with the metrics token of the Secret the pods read (the chart's or an existing one)."""

from __future__ import annotations

import pytest

from tests.deploy.helm_chart import CHART, DEFAULT_VALUES, named, of_kind, only, render

pytestmark = pytest.mark.helm

ON = ("metrics.serviceMonitor.enabled=true", "secrets.metricsToken=ci-metrics-token")


def test_no_service_monitor_by_default() -> None:
    assert of_kind(render(DEFAULT_VALUES), "ServiceMonitor") == []


def test_the_service_monitor_scrapes_the_control_plane_with_the_metrics_token() -> None:
    objects = render(DEFAULT_VALUES, sets=(*ON, "metrics.serviceMonitor.labels.release=kps"))
    monitor = only(objects, "ServiceMonitor")
    service = only(objects, "Service")
    secret = named(objects, "Secret", "op-orgplane")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kps"
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == [service["metadata"]["namespace"]]
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    assert endpoint["interval"] == "30s"
    credentials = endpoint["authorization"]["credentials"]
    assert endpoint["authorization"]["type"] == "Bearer"
    assert credentials["name"] == secret["metadata"]["name"]
    assert secret["stringData"][credentials["key"]] == "ci-metrics-token"
    # The pods read the same Secret, so ORGPLANE_METRICS_TOKEN is the token scrapes present.
    container = only(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert {"secretRef": {"name": credentials["name"]}} in container["envFrom"]
    assert "ci-metrics-token" not in str(monitor)


def test_with_an_existing_secret_the_token_comes_from_it() -> None:
    values = CHART / "ci" / "existing-secret-values.yaml"
    monitor = only(render(values, sets=ON[:1]), "ServiceMonitor")
    credentials = monitor["spec"]["endpoints"][0]["authorization"]["credentials"]
    assert credentials == {"name": "orgplane-credentials", "key": "ORGPLANE_METRICS_TOKEN"}
