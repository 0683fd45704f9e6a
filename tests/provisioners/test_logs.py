"""``Provisioner.logs``: an instance's log lines from each backend.

Local (a real process, its ``instance.log``) and Docker (a real container, the engine's log
stream): the last lines, ``since`` filtering, and ``follow`` receiving a line the instance logs
after the stream opened (a request with a unique request id). Kubernetes, against kmock's
emulator: the org's pod is found by its labels (another deployment's pod of the same org is never
read) and ``tail``, ``since`` and ``follow`` reach the API server as ``pods/log`` parameters. An
org without an instance is a permanent error on every backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import kmock
import pytest
from kubernetes import client as k8s

from provisioners.base import ProvisionerOptions
from provisioners.errors import PermanentProvisionerError
from provisioners.kubernetes import KubernetesProvisioner
from provisioners.logstream import MAX_LINE_CHARS, file_lines
from provisioners.naming import MANAGED_BY_LABEL, ORG_ID_LABEL
from provisioners.probe import answers_ready
from tests.provisioners.harness import Harness, wait_for_state
from tests.provisioners.kube import api_client
from tests.support.wait import eventually

REAL_BACKENDS = ["local", pytest.param("docker", marks=[pytest.mark.docker, pytest.mark.slow])]


async def _collect(lines: Any) -> list[str]:
    return [line async for line in lines]


@pytest.mark.parametrize("harness", REAL_BACKENDS, indirect=True)
async def test_logs_of_a_real_instance(harness: Harness, cleanup_provisioners: None) -> None:
    provisioner = harness.provisioner()
    spec = harness.spec()
    await provisioner.apply(spec=spec)
    status = await wait_for_state(provisioner, spec.org_id, {"running"})
    await eventually(
        lambda: answers_ready(status.endpoint), what="the instance answers", timeout=60
    )

    # Its readiness probe was logged, as JSON lines naming the org.
    last = await _collect(provisioner.logs(org_id=spec.org_id, tail=2))
    assert 1 <= len(last) <= 2
    records = [json.loads(line) for line in last]
    assert all(record["org_id"] == spec.org_id for record in records)
    everything = await _collect(provisioner.logs(org_id=spec.org_id))
    assert len(everything) >= len(last)
    assert last[0] in everything

    later = datetime.now(UTC) + timedelta(hours=1)
    assert await _collect(provisioner.logs(org_id=spec.org_id, since=later, tail=50)) == []
    earlier = datetime.now(UTC) - timedelta(hours=1)
    assert await _collect(provisioner.logs(org_id=spec.org_id, since=earlier, tail=2))

    # follow: a request made after the stream opened arrives as a new line (requests are
    # repeated until one does: the stream attaches when the reader first iterates).
    marker = f"logs-{uuid.uuid4().hex}"
    followed = provisioner.logs(org_id=spec.org_id, tail=0, follow=True)
    seen: list[str] = []

    async def read() -> None:
        async for line in followed:
            seen.append(line)

    reader = asyncio.create_task(read())
    try:
        async with httpx.AsyncClient(timeout=10, trust_env=False) as http:

            async def arrived() -> bool:
                sent = await http.get(f"{status.endpoint}/readyz", headers={"X-Request-ID": marker})
                assert sent.status_code == 200
                return any(marker in line for line in seen)

            await eventually(arrived, what="a followed line", timeout=60, interval=0.3)
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        await followed.aclose()  # type: ignore[attr-defined]
    assert json.loads(next(line for line in seen if marker in line))["request_id"] == marker

    with pytest.raises(PermanentProvisionerError):
        await _collect(provisioner.logs(org_id=uuid.uuid4().hex))


def _pod(name: str, org_id: str, deployment: str, *, phase: str, created: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "orgplane-test",
            "creationTimestamp": created,
            "labels": {ORG_ID_LABEL: org_id, MANAGED_BY_LABEL: deployment},
        },
        "spec": {"containers": [{"name": "instance", "image": "orgplane-instance:dev"}]},
        "status": {"phase": phase},
    }


@pytest.mark.kmock(cls=kmock.KubernetesEmulator)
async def test_kubernetes_reads_the_log_of_the_orgs_running_pod(
    kmock: kmock.RawHandler, run_id: str
) -> None:
    client = api_client(kmock)
    core = k8s.CoreV1Api(client)
    org_id = uuid.uuid4().hex
    pods = [
        _pod("old", org_id, run_id, phase="Succeeded", created="2026-01-02T00:00:00Z"),
        _pod("current", org_id, run_id, phase="Running", created="2026-01-01T00:00:00Z"),
        _pod("theirs", org_id, f"{run_id}-other", phase="Running", created="2026-01-03T00:00:00Z"),
    ]
    for pod in pods:
        await asyncio.to_thread(core.create_namespaced_pod, "orgplane-test", pod)
    base = "/api/v1/namespaces/orgplane-test/pods"
    kmock[f"get {base}/current/log"] << b'{"event": "one"}\n{"event": "two"}\r\npartial'
    kmock[f"get {base}/theirs/log"] << b"not ours\n"
    provisioner = KubernetesProvisioner(
        options=ProvisionerOptions(deployment_id=run_id, kubernetes_namespace="orgplane-test"),
        api_client=client,
    )
    try:
        since = datetime.now(UTC) - timedelta(seconds=90)
        lines = await _collect(provisioner.logs(org_id=org_id, tail=2, since=since, follow=True))
        assert lines == ['{"event": "one"}', '{"event": "two"}', "partial"]
        asked = [r for r in kmock if r.url.path.endswith("/log")]
        assert [r.url.path for r in asked] == [f"{base}/current/log"]
        query = asked[0].url.query
        assert query["tailLines"] == "2"
        assert query["follow"] == "true"
        assert 90 <= int(query["sinceSeconds"]) <= 150

        with pytest.raises(PermanentProvisionerError):
            await _collect(provisioner.logs(org_id=uuid.uuid4().hex))
    finally:
        await provisioner.close()
        client.close()


async def test_file_lines_tail_since_and_long_lines(tmp_path: Path) -> None:
    """Backwards tail over more than one read block; a line without a time (a traceback) goes
    with the line above it; an endless line is cut."""
    log = tmp_path / "instance-output.txt"
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = []
    for i in range(3000):
        stamp = (start + timedelta(seconds=i)).isoformat().replace("+00:00", "Z")
        rows.append(json.dumps({"event": f"e{i}", "timestamp": stamp}))
        if i % 1000 == 999:
            rows.append("Traceback (most recent call last):")
    rows.append("x" * (MAX_LINE_CHARS + 10))
    log.write_text("\n".join(rows) + "\n")

    last = await _collect(file_lines(log, since=None, tail=3, follow=False))
    assert last[-1] == "x" * MAX_LINE_CHARS
    assert json.loads(last[0])["event"] == "e2999"
    assert last[1] == "Traceback (most recent call last):"

    since = start + timedelta(seconds=2998)
    shown = await _collect(file_lines(log, since=since, tail=100, follow=False))
    assert [json.loads(line)["event"] for line in shown[:2]] == ["e2998", "e2999"]
    assert len(shown) == 4
    assert (
        await _collect(file_lines(tmp_path / "missing.txt", since=None, tail=5, follow=False)) == []
    )
