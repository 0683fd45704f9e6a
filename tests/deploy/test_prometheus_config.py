"""The shipped Prometheus configuration is valid for the Prometheus the tests run
(``promtool check config``): as shipped (syntax; its credentials files exist only in the
container), and complete once pointed at files that exist, as the Prometheus test uses it.
Compose's ``monitoring`` profile runs Prometheus on that file."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from tests.deploy.compose_file import COMPOSE_FILE, FILLED_IN, load
from tests.integration.test_prometheus import scrape_config
from tests.support.services import REPO, need

SHIPPED = REPO / "deploy/prometheus/prometheus.yml"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    need("promtool (Debian's prometheus package)", binary is not None)
    assert binary is not None
    return subprocess.run(
        [binary, "check", "config", *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_the_shipped_configuration_checks(tmp_path: Path) -> None:
    shipped = promtool("--syntax-only", str(SHIPPED))
    assert shipped.returncode == 0, shipped.stdout + shipped.stderr
    (tmp_path / "metrics-token").write_text("t")
    (tmp_path / "routing-token").write_text("t")
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(scrape_config("127.0.0.1:8080", tmp_path)))
    full = promtool(str(config))
    assert full.returncode == 0, full.stdout + full.stderr
    (tmp_path / "metrics-token").unlink()
    missing = promtool(str(config))
    assert missing.returncode != 0
    assert "metrics-token" in missing.stdout + missing.stderr


def test_the_compose_monitoring_profile_runs_prometheus_on_the_shipped_file() -> None:
    project = load()
    prometheus = project["services"]["prometheus"]
    assert prometheus["profiles"] == ["monitoring"]
    assert (
        "../deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro"
        in (prometheus["volumes"])
    )
    assert (COMPOSE_FILE.parent / "../deploy/prometheus/prometheus.yml").resolve() == SHIPPED
    assert prometheus["networks"] == ["orgplane"]
    assert prometheus["ports"] == ["127.0.0.1:9090:9090"]
    # The entry point writes exactly the credentials files the configuration reads, on a tmpfs.
    config = yaml.safe_load(SHIPPED.read_text())
    files = {
        job.get("authorization", {}).get("credentials_file")
        or job["http_sd_configs"][0]["authorization"]["credentials_file"]
        for job in config["scrape_configs"]
    }
    script = prometheus["command"][0]
    for name in files:
        assert f"> {name}" in script
        assert Path(name).parent.as_posix() in prometheus["tmpfs"]
    tokens = prometheus["environment"]
    assert tokens["ORGPLANE_ROUTING_TOKEN"] == FILLED_IN["ORGPLANE_ROUTING_TOKEN"]
    assert "ORGPLANE_METRICS_TOKEN" in project["services"]["control-plane"]["environment"]
