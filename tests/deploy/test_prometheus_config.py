"""The shipped Prometheus configuration is valid for the Prometheus the tests run
(``promtool check config``): as shipped (syntax; its credentials files exist only in the
container), and complete once pointed at files that exist, as the Prometheus test uses it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

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
