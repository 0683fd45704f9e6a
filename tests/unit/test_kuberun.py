"""A killed session's test cluster is found from its run folder's markers and stopped at the next
cluster start (tests/support/kuberun.py), on stand-in processes and a real mount: only what the
markers name, only when its owners are gone; a folder without markers that still runs an
engine is left alone with a warning saying what to remove; each cluster's own cgroup root."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import kuberun
from tests.support.wait import wait_until


@pytest.fixture
def spawn() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Sleeping stand-ins, each in a session of its own like the cluster's processes."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def _sleeper(started: list[subprocess.Popen[bytes]], *argv: str) -> subprocess.Popen[bytes]:
    code = "import time; time.sleep(120)"
    proc = subprocess.Popen([sys.executable, "-c", code, *argv], start_new_session=True)
    started.append(proc)
    wait_until(lambda: b"time.sleep" in Path(f"/proc/{proc.pid}/cmdline").read_bytes(),
               what="the stand-in started", timeout=30)  # fmt: skip
    return proc


def _run_folder(parent: Path, name: str) -> Path:
    run = parent / f"{kuberun.PREFIX}{name}"
    (run / "docker").mkdir(parents=True)
    return run


def _mounted(path: Path) -> bool:
    mounts = Path("/proc/mounts").read_text().splitlines()
    return any(line.split()[1] == str(path) for line in mounts)


def test_a_cluster_whose_owners_are_gone_is_stopped_by_its_recorded_pids_and_unmounted(
    tmp_path: Path, spawn: list[subprocess.Popen[bytes]]
) -> None:
    run = _run_folder(tmp_path, "leaked")
    kubelet = _sleeper(spawn, f"--root-dir={run}/kubelet")
    # A recorded pid now used by another process (no mention of the folder): never signalled.
    reused = _sleeper(spawn)
    gone = subprocess.Popen(["true"])
    gone.wait()
    (run / kuberun.OWNER).write_text(json.dumps([{"pid": gone.pid, "start": "1"}]))
    kuberun.record(run, {"kubelet": kubelet.pid, "etcd": reused.pid}, None)
    volume = run / "kubelet" / "pods" / "p" / "volumes" / "v"
    volume.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(volume)], check=True)
    # A live session's cluster beside it: untouched.
    live = _run_folder(tmp_path, "live")
    kuberun.write_owner(live)
    live_kubelet = _sleeper(spawn, f"--root-dir={live}/kubelet")
    kuberun.record(live, {"kubelet": live_kubelet.pid}, None)

    assert kuberun.stop_leftovers(tmp_path) == [run]

    assert kubelet.wait(timeout=30) != 0
    assert not _mounted(volume)
    wait_until(lambda: not run.exists(), what="the leaked run folder removed", timeout=30)
    assert reused.poll() is None
    assert live_kubelet.poll() is None
    assert live.exists()


def test_a_running_engine_in_a_folder_without_markers_is_left_with_a_warning_of_what_to_remove(
    tmp_path: Path, spawn: list[subprocess.Popen[bytes]]
) -> None:
    run = _run_folder(tmp_path, "old")
    dockerd = _sleeper(spawn, f"--data-root={run}/docker/data")
    (run / "docker" / "docker.pid").write_text(f"{dockerd.pid}\n")
    # An unmarked folder whose engine is gone (a finished cluster being removed), looked at
    # first: passed over.
    stale = _run_folder(tmp_path, "a-stale")
    (stale / "docker" / "docker.pid").write_text(f"{os.getpid()}\n")

    with pytest.warns(UserWarning, match="without owner markers") as warned:
        assert kuberun.stop_leftovers(tmp_path) == []

    assert len(warned) == 1
    message = str(warned[0].message)
    assert str(run) in message
    assert f"pid {dockerd.pid}" in message
    assert "umount -l" in message
    assert str(stale) not in message
    assert dockerd.poll() is None


def test_each_cluster_has_a_cgroup_root_of_its_own_removed_with_it(tmp_path: Path) -> None:
    """Pods of two clusters on one host never share ``/kubepods`` (each kubelet kills the pod
    cgroups it does not know there): each kubelet gets ``--cgroup-root=/<run folder name>``."""
    run = _run_folder(tmp_path, f"cg{os.getpid()}")
    root = kuberun.cgroup_root(run)
    assert root == f"/{run.name}"
    memory, cpuset = kuberun.CGROUPS / "memory" / run.name, kuberun.CGROUPS / "cpuset" / run.name
    assert memory.is_dir()
    assert (cpuset / "cpuset.cpus").read_text().strip()  # usable: CPUs given
    (memory / "kubepods" / "burstable").mkdir(parents=True)  # as the kubelet makes them
    # A hybrid host's cgroup2 hierarchy gets the pods' cgroups too (made by the runtime).
    unified = kuberun.CGROUPS / "unified" / run.name
    hybrid = unified.parent.is_dir()
    if hybrid:
        (unified / "kubepods").mkdir(parents=True)

    kuberun.teardown(run, {}, None, None, {})

    assert not memory.exists()
    assert not cpuset.exists()
    assert not unified.exists()
