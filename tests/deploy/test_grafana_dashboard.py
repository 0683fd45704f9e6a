"""deploy/grafana/orgplane-fleet.json: a Grafana dashboard of the expected shape, whose queries
are valid PromQL (``promtool check rules``) over series the platform exposes, grouped by labels
those series (or service discovery) carry."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.metrics import MetricWrapperBase

from control_plane.metrics import fleet_families
from control_plane.process_metrics import ControlPlaneMetrics
from org_instance.metrics import InstanceMetrics
from tests.routing.helpers import memory_db
from tests.support.services import REPO, need

DASHBOARD = REPO / "deploy/grafana/orgplane-fleet.json"
PANEL_TYPES = {"timeseries", "stat", "gauge", "table", "bargauge"}
#: Labels Prometheus adds to every instance series (service discovery, the target).
TARGET_LABELS = {"job", "instance", "org_id", "org_slug", "plan", "version"}
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


async def exposed(tmp_path: Path) -> dict[str, set[str]]:
    """Every sample name the control plane and an instance expose, with its labels."""
    apps = [ControlPlaneMetrics(), InstanceMetrics(tmp_path / "instance.db")]
    # A labelled series has no sample until observed (and an empty database gives the fleet
    # families none): their label names are on the metric or the family.
    declared = {
        metric._name: set(metric._labelnames)
        for app in apps
        for metric in vars(app).values()
        if isinstance(metric, MetricWrapperBase)
    }
    families = [family for app in apps for family in app.registry.collect()]
    async with memory_db() as db:
        families += await fleet_families(db, heartbeat_interval=10)
    names: dict[str, set[str]] = {"up": set(TARGET_LABELS)}
    for family in families:
        labels = {label for sample in family.samples for label in sample.labels}
        labels |= declared.get(family.name, set(getattr(family, "_labelnames", ())))
        for suffix in SUFFIXES[family.type]:
            extra = {"le"} if suffix == "_bucket" else set()
            names[family.name + suffix] = labels | extra | TARGET_LABELS
    return names


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def test_the_dashboard_has_the_expected_structure() -> None:
    board = dashboard()
    for key in ("title", "uid", "schemaVersion", "panels", "templating", "time"):
        assert key in board, key
    assert board["uid"] == "orgplane-fleet"
    assert isinstance(board["schemaVersion"], int)
    (variable,) = board["templating"]["list"]
    assert (variable["name"], variable["type"], variable["query"]) == (
        "datasource",
        "datasource",
        "prometheus",
    )
    panels = board["panels"]
    assert len({p["id"] for p in panels}) == len(panels), "panel ids repeat"
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        assert panel["type"] in PANEL_TYPES, panel["title"]
        assert panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        mine = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not mine & cells, f"{panel['title']} overlaps another panel"
        cells |= mine
        refs = [target["refId"] for target in panel["targets"]]
        assert refs, panel["title"]
        assert len(set(refs)) == len(refs), panel["title"]
        assert all(target["expr"].strip() for target in panel["targets"])


async def test_every_query_reads_exposed_series_by_their_labels(tmp_path: Path) -> None:
    names = await exposed(tmp_path)
    used: set[str] = set()
    for panel in dashboard()["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            metrics = set(re.findall(r"\b(orgplane_[a-z_]+|up)\b", expr))
            assert metrics, f"{panel['title']}: no orgplane series"
            unknown = metrics - set(names)
            assert not unknown, f"{panel['title']}: {unknown} is not exposed"
            grouped = {
                label.strip()
                for group in re.findall(r"\bby \(([^)]*)\)", expr)
                for label in group.split(",")
            }
            matched = set(re.findall(r"([a-z_]+)=~?\"", expr))
            legend = set(re.findall(r"\{\{(\w+)\}\}", target["legendFormat"]))
            for label in grouped | matched | legend:
                assert all(label in names[m] for m in metrics), f"{panel['title']}: {label}"
            used |= metrics
    # The dashboard covers every family of the fleet, the control plane and the instances.
    covered = {re.sub(r"_(total|bucket|count|sum)$", "", name) for name in used}
    families = {re.sub(r"_(total|bucket|count|sum)$", "", name) for name in names}
    assert families - covered == set()


def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    binary = shutil.which("promtool")
    need("promtool (Debian's prometheus package)", binary is not None)
    assert binary is not None
    rules = [
        {"record": f"orgplane:check:{index}", "expr": target["expr"]}
        for index, target in enumerate(
            target for panel in dashboard()["panels"] for target in panel["targets"]
        )
    ]
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    checked = subprocess.run(
        [binary, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"{len(rules)} rules found" in checked.stdout
