"""The local backend with real org instance processes.

Proves: an instance runs in its own session with only the environment it needs (none of the
control plane's secrets); a dead instance shows as failed, with its exit code, and the next apply
starts a new one; a state file whose pid now belongs to an unrelated process is never believed
nor signalled; a launch whose pid was never recorded (a crash between the two writes) is found by
its marker instead of started twice; restart keeps the data; the state file is private and the
handle carries no secret.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from orgplane_wire.contract import Env
from provisioners import processes
from provisioners.base import ProvisionerOptions
from provisioners.local import LocalProvisioner
from tests.provisioners.harness import kill_local_leftovers, make_spec, wait_for_state


@pytest.fixture
async def provisioner(tmp_path: Path, run_id: str):  # type: ignore[no-untyped-def]
    made = LocalProvisioner(options=ProvisionerOptions(deployment_id=run_id, data_root=tmp_path))
    yield made
    for status in await made.list():
        await made.remove(org_id=status.org_id, keep_data=False)
    kill_local_leftovers([run_id])


def _state(tmp_path: Path, org_id: str) -> dict:
    return json.loads((tmp_path / "orgs" / org_id / "state.json").read_text())


async def test_an_instance_runs_alone_with_only_its_environment(
    provisioner: LocalProvisioner, run_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORGPLANE_SECRET_KEY", "control-plane-secret-never-shared")
    monkeypatch.setenv("ORGPLANE_DATABASE_URL", "postgresql://admin:pw@db/orgplane")
    spec = make_spec(run_id=run_id)
    status = await provisioner.apply(spec=spec)
    pid = status.handle["pid"]

    assert os.getsid(pid) == pid  # its own session: a control-plane crash leaves it running
    environ = dict(
        item.split("=", 1)
        for item in Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0")
        if "=" in item
    )
    assert "ORGPLANE_SECRET_KEY" not in environ
    assert "ORGPLANE_DATABASE_URL" not in environ
    assert environ[Env.ORG_ID] == spec.org_id
    assert environ[Env.BIND_HOST] == "127.0.0.1"
    assert environ[Env.DATA_DIR] == str((tmp_path / "orgs" / spec.org_id / "data").resolve())

    state_file = tmp_path / "orgs" / spec.org_id / "state.json"
    assert state_file.stat().st_mode & 0o777 == 0o600
    assert spec.env[Env.INSTANCE_CREDENTIAL] not in json.dumps(status.handle)
    running = await wait_for_state(provisioner, spec.org_id, {"running"})
    assert running.endpoint == f"http://127.0.0.1:{status.handle['port']}"


async def test_a_dead_instance_is_failed_and_apply_starts_a_new_one(
    provisioner: LocalProvisioner, run_id: str
) -> None:
    spec = make_spec(run_id=run_id)
    first = await provisioner.apply(spec=spec)
    os.killpg(first.handle["pid"], signal.SIGKILL)

    failed = await wait_for_state(provisioner, spec.org_id, {"failed"}, seconds=10)
    assert f"process {first.handle['pid']} is not running (exit code -9)" in failed.message
    again = await provisioner.apply(spec=spec)
    assert again.handle["pid"] != first.handle["pid"]
    await wait_for_state(provisioner, spec.org_id, {"running"})


async def test_a_reused_pid_is_never_believed_nor_signalled(
    provisioner: LocalProvisioner, run_id: str, tmp_path: Path
) -> None:
    spec = make_spec(run_id=run_id)
    await provisioner.apply(spec=spec)
    await provisioner.stop(org_id=spec.org_id)
    stranger = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        start_new_session=True,
    )
    try:
        state = _state(tmp_path, spec.org_id)  # as if the pid had been reused since
        state.update(pid=stranger.pid, stopped=False)
        (tmp_path / "orgs" / spec.org_id / "state.json").write_text(json.dumps(state))

        restarted = LocalProvisioner(options=provisioner.options)
        status = await restarted.status(org_id=spec.org_id)
        assert status is not None
        assert status.state == "failed"
        await restarted.remove(org_id=spec.org_id, keep_data=False)
        assert stranger.poll() is None, "an unrelated process was signalled"
    finally:
        stranger.kill()
        stranger.wait()


async def test_an_unrecorded_launch_is_found_by_its_marker(
    provisioner: LocalProvisioner, run_id: str, tmp_path: Path
) -> None:
    spec = make_spec(run_id=run_id)
    first = await provisioner.apply(spec=spec)
    state = _state(tmp_path, spec.org_id)  # as if we crashed between launch and second write
    state.update(pid=0, started="")
    (tmp_path / "orgs" / spec.org_id / "state.json").write_text(json.dumps(state))

    restarted = LocalProvisioner(options=provisioner.options)
    again = await restarted.apply(spec=spec)
    assert again.handle["pid"] == first.handle["pid"]
    marker = processes.marker(deployment_id=run_id, org_id=spec.org_id)
    assert processes.find_by_marker(marker) == [first.handle["pid"]]


async def test_restart_keeps_the_data(provisioner: LocalProvisioner, run_id: str) -> None:
    spec = make_spec(run_id=run_id)
    first = await provisioner.apply(spec=spec)
    kept = Path(first.handle["data_dir"]) / "kept.txt"
    kept.write_text("still here")

    restarted = await provisioner.restart(org_id=spec.org_id)
    assert restarted.handle["pid"] != first.handle["pid"]
    assert kept.read_text() == "still here"
    await wait_for_state(provisioner, spec.org_id, {"running"})
