"""A real Prometheus on the shipped scrape configuration (``deploy/prometheus/prometheus.yml``)
discovers three org instances through the control plane's service discovery and scrapes them
and the control plane; its query API answers the series with the discovered labels.

The control plane runs as ``orgplane serve --workers 2`` (SQLite, local backend): every scrape,
whichever worker answers it, reports the requests both workers served.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.api import PASSWORD
from tests.support.services import REPO, need
from tests.support.wait import wait_http, wait_until

pytestmark = pytest.mark.slow

METRICS_TOKEN = "prometheus-test-metrics-token"
ROUTING_TOKEN = "prometheus-test-routing-token"
SLUGS = ("alpha", "bravo", "charlie")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _cli(env: dict[str, str], *args: str, stdin: str = "") -> None:
    done = subprocess.run(
        [sys.executable, "-m", "control_plane.cli.main", *args],
        env=env,
        cwd=REPO,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def _instances_under(root: Path) -> list[int]:
    """Pids of the local org instances whose data is under ``root``."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if b"orgplane_instance=" not in (proc / "cmdline").read_bytes():
                continue
            environ = (proc / "environ").read_bytes().split(b"\0")
            if f"ORGPLANE_DATA_DIR={root}".encode() in [e[: len(str(root)) + 18] for e in environ]:
                pids.append(int(proc.name))
    return pids


def scrape_config(target: str, secrets: Path) -> dict[str, Any]:
    """The shipped configuration with only the control plane's address, the credentials
    files and the intervals changed."""
    config: dict[str, Any] = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    control_plane = jobs["orgplane-control-plane"]
    control_plane["static_configs"] = [{"targets": [target]}]
    control_plane["authorization"]["credentials_file"] = str(secrets / "metrics-token")
    discovery = jobs["orgplane-instances"]["http_sd_configs"][0]
    discovery["url"] = discovery["url"].replace("control-plane:8080", target)
    discovery["refresh_interval"] = "1s"
    discovery["authorization"]["credentials_file"] = str(secrets / "routing-token")
    return config


def multiprocess_dir(pid: int) -> Path:
    """The ``PROMETHEUS_MULTIPROC_DIR`` the workers of server ``pid`` were started with (the
    server sets it after its own start, so only its children's environment shows it)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    found = set()
    for child in children:
        with contextlib.suppress(OSError):
            for entry in Path(f"/proc/{child}/environ").read_bytes().split(b"\0"):
                if entry.startswith(b"PROMETHEUS_MULTIPROC_DIR="):
                    found.add(entry.split(b"=", 1)[1].decode())
    assert len(found) == 1, f"the workers' PROMETHEUS_MULTIPROC_DIR: {found}"
    return Path(found.pop())


@pytest.fixture
def control_plane(tmp_path: Path) -> Iterator[str]:
    """``orgplane serve --workers 2`` on a free port, migrated, with an admin; its URL."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ORGPLANE_", "PROMETHEUS"))}
    port = _free_port()
    env = {
        **clean,
        "ORGPLANE_MODE": "embedded",
        "ORGPLANE_HOST": "127.0.0.1",
        "ORGPLANE_PORT": str(port),
        "ORGPLANE_DATA_DIR": str(tmp_path / "data"),
        "ORGPLANE_SECRET_KEY": "prometheus-test-secret",
        "ORGPLANE_METRICS_TOKEN": METRICS_TOKEN,
        "ORGPLANE_ROUTING_TOKEN": ROUTING_TOKEN,
        "ORGPLANE_PROVISIONER": "local",
        "ORGPLANE_DEPLOYMENT_ID": f"t-{uuid.uuid4().hex[:10]}",
        "ORGPLANE_RECONCILE_INTERVAL": "0.5",
        "ORGPLANE_HEARTBEAT_INTERVAL": "1",
        "ORGPLANE_LOG_LEVEL": "WARNING",
    }
    _cli(env, "migrate")
    _cli(env, "admin", "create", "--email", "root@example.com", "--password-stdin", stdin=PASSWORD)
    log = tmp_path / "control-plane.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "control_plane.cli.main", "serve", "--workers", "2"],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/readyz", proc=process, log=log)
        shared = multiprocess_dir(process.pid)
        yield url
        # Both workers keep their values there (files named by pid); it goes at exit.
        assert len({f.stem.rsplit("_", 1)[1] for f in shared.glob("histogram_*.db")}) == 2
    finally:
        _stop(process)
        for pid in _instances_under(tmp_path / "data"):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not _instances_under(tmp_path / "data"), what="instances stopped")
    assert not shared.exists()


@pytest.fixture
def prometheus(tmp_path: Path, control_plane: str) -> Iterator[str]:
    """Prometheus on the shipped configuration, pointed at ``control_plane``; its URL."""
    binary = shutil.which("prometheus")
    need("Prometheus", binary is not None)
    assert binary is not None
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "metrics-token").write_text(METRICS_TOKEN)
    (secrets / "routing-token").write_text(ROUTING_TOKEN)
    config_file = tmp_path / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(scrape_config(control_plane.split("//")[1], secrets)))
    port = _free_port()
    log = tmp_path / "prometheus.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config_file}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/-/ready", proc=process, log=log)
        yield url
    finally:
        _stop(process)


def query(prometheus: str, expression: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{prometheus}/api/v1/query", params={"query": expression}, timeout=5)
    assert answer.status_code == 200, answer.text
    result: list[dict[str, Any]] = answer.json()["data"]["result"]
    return result


def test_prometheus_discovers_and_scrapes_the_platform(control_plane: str, prometheus: str) -> None:
    with httpx.Client(base_url=control_plane, timeout=30) as http:
        login = http.post(
            "/api/v1/auth/login", json={"email": "root@example.com", "password": PASSWORD}
        )
        assert login.status_code == 200, login.text
        admin = {"Authorization": f"Bearer {login.json()['access_token']}"}
        ids = {}
        for slug in SLUGS:
            made = http.post("/api/v1/orgs", headers=admin, json={"name": slug, "slug": slug})
            assert made.status_code == 202, made.text
            ids[slug] = made.json()["id"]
    # One connection each, so the kernel spreads them over both workers; every scrape, whichever
    # worker answers it, counts all of them.
    for _ in range(20):
        assert httpx.get(f"{control_plane}/healthz", timeout=10).status_code == 200
    healthz = 'orgplane_http_request_duration_seconds_count{method="GET",route="/healthz"'
    scrape = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    for _ in range(8):
        text = httpx.get(f"{control_plane}/metrics", headers=scrape, timeout=10).text
        line = next(line for line in text.splitlines() if line.startswith(healthz))
        assert float(line.rsplit(" ", 1)[1]) == 20

    def instances_up() -> list[dict[str, Any]]:
        up = query(prometheus, 'up{job="orgplane-instances"} == 1')
        return up if len(up) == len(SLUGS) else []

    up = wait_until(instances_up, what="Prometheus scraping three instances", timeout=120)
    labels = {series["metric"]["org_slug"]: series["metric"] for series in up}
    assert set(labels) == set(SLUGS)
    for slug, org_id in ids.items():
        assert labels[slug]["org_id"] == org_id
        assert labels[slug]["plan"]
        assert labels[slug]["version"]
    sizes = query(prometheus, 'orgplane_instance_sqlite_bytes{file="main"}')
    assert {s["metric"]["org_id"] for s in sizes} == set(ids.values())
    assert all(float(s["value"][1]) > 0 for s in sizes)
    # Waited for, not read once: a scrape of the control plane can miss its 1 s timeout on a
    # loaded machine (it did under a CPU hog), and the next scrape is a second later.
    wait_until(
        lambda: query(prometheus, 'up{job="orgplane-control-plane"} == 1'),
        what="Prometheus scraping the control plane",
        timeout=120,
    )
    running = wait_until(
        lambda: query(prometheus, 'orgplane_orgs{phase="running"} == 3'),
        what="three running orgs in the fleet series",
    )
    assert running[0]["metric"]["job"] == "orgplane-control-plane"
    passes = query(prometheus, "orgplane_reconciler_pass_duration_seconds_count")
    assert passes
    assert all(float(s["value"][1]) > 0 for s in passes)
    assert query(prometheus, "orgplane_reconciler_queue_depth >= 0")
    assert query(prometheus, "orgplane_heartbeat_lag_max_seconds < 10")
    routes = {
        s["metric"]["route"]
        for s in query(prometheus, "orgplane_http_request_duration_seconds_count")
    }
    assert "/api/v1/orgs" in routes
    assert not any(org_id in route for route in routes for org_id in ids.values())
