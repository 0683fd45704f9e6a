"""The run folder of a test cluster (tests/support/kubecluster.py): its markers, stopping what
it recorded, and finding the leftovers of a cluster whose test session was killed.

Every process a cluster starts runs in a session of its own, so a test session killed before its
teardown leaves them all running: the kubelet, its dockerd (and the pods on it), etcd and the
API server. Under one shared ``/kubepods`` cgroup such a leftover kubelet killed the next
cluster's pods (each kubelet removes the pod cgroups it does not know), so each cluster now has a
cgroup root of its own (:func:`cgroup_root`); and a leftover still holds memory, CPU and a
bridge. So each run folder (``/tmp/opk-*``) records, as it goes:

- ``owner.json``: the test process that started the cluster and, under xdist, the controller
  that stops it (pid and start time, so a reused pid is not taken for it);
- ``pids.json``: each process started (name: pid) and the bridge made for the engine;

and :func:`stop_leftovers`, at every cluster start, stops the clusters whose owners are all gone
(only recorded pids whose command line names that run folder; then the pods' containers, the
kubelet's mounts, the bridge, its cgroups, the folder). A folder without markers that still
has a running engine (a cluster started by an older checkout) cannot be judged, leaked or in
use: it is left alone, with a warning saying what to remove if it is leaked (it shares no
cgroup with the new cluster). A cluster whose owner is alive belongs to a running session:
untouched.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any

CGROUPS = Path("/sys/fs/cgroup")
OWNER = "owner.json"
PIDS = "pids.json"
PREFIX = "opk-"


def _start_time(pid: int) -> str | None:
    """The process's start time (clock ticks since boot), or None when there is no such
    process (or only its zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return None if fields[0] == "Z" else fields[19]


def _mentions(pid: int, run: Path) -> bool:
    """Whether process ``pid`` is running with ``run`` in its command line (pid reuse check)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return _start_time(pid) is not None and str(run).encode() in argv


def write_owner(run: Path) -> None:
    """Record the test process (and the xdist controller it serves) as the cluster's owners."""
    owners = [os.getpid()]
    if os.environ.get("PYTEST_XDIST_WORKER"):
        owners.append(os.getppid())
    found = [{"pid": pid, "start": _start_time(pid)} for pid in owners]
    (run / OWNER).write_text(json.dumps(found))


def record(run: Path, pids: dict[str, int], bridge: str | None) -> None:
    """Record what was started so far (rewritten after each start, so a kill at any point
    leaves an accurate list)."""
    (run / PIDS).write_text(json.dumps({"pids": pids, "bridge": bridge}))


def _owned(run: Path) -> bool | None:
    """Whether an owner of ``run`` is alive; None when the folder has no owner marker."""
    try:
        owners: list[dict[str, Any]] = json.loads((run / OWNER).read_text())
    except (OSError, ValueError):
        return None
    return any(_start_time(int(o["pid"])) == o["start"] for o in owners)


def stop_leftovers(parent: Path = Path("/tmp")) -> list[Path]:
    """Stop the clusters under ``parent`` whose owners are gone (see the module docstring);
    answers their run folders. Warns of a running cluster without markers."""
    stopped = []
    for run in sorted(parent.glob(f"{PREFIX}*")):
        if not run.is_dir():
            continue
        owned = _owned(run)
        if owned:
            continue
        if owned is None:
            _unjudged(run)
            continue
        try:
            recorded = json.loads((run / PIDS).read_text())
        except (OSError, ValueError):
            recorded = {"pids": {}, "bridge": None}
        pids = {n: int(p) for n, p in recorded["pids"].items() if _mentions(int(p), run)}
        sock = run / "docker" / "docker.sock"
        engine = f"unix://{sock}" if "dockerd" in pids and sock.exists() else None
        teardown(run, pids, recorded["bridge"], engine, {})
        stopped.append(run)
    return stopped


def _unjudged(run: Path) -> None:
    """A run folder without an owner marker: if its engine still runs (a cluster of an older
    checkout, leaked or in use: nothing here can tell), say what to remove if it is leaked."""
    try:
        pid = int((run / "docker" / "docker.pid").read_text().strip())
    except (OSError, ValueError):
        return
    if _mentions(pid, run):
        warnings.warn(
            f"a Kubernetes test cluster without owner markers (an older checkout's) is still "
            f"running in {run} (its dockerd is pid {pid}); left alone, as it may be another "
            f"session's. If no test session is using it, stop every process whose command line "
            f"names {run} (kubelet first, then dockerd, etcd, kube-*), `umount -l` the mounts "
            f"under {run}, delete its bridge (`ip link`, named opk...) and remove {run}",
            stacklevel=3,
        )


def _hierarchies(kinds: tuple[str, ...] = ("cgroup",)) -> list[Path]:
    """The cgroup hierarchies of ``kinds`` mounted under /sys/fs/cgroup: v1 ones (the kubelet's
    cgroupfs driver) by default; a hybrid host's cgroup2 one gets the pods' cgroups too."""
    mounts = (line.split() for line in Path("/proc/mounts").read_text().splitlines())
    return [Path(m[1]) for m in mounts if m[2] in kinds and Path(m[1]).parent == CGROUPS]


def cgroup_root(run: Path) -> str:
    """Make the cluster's own cgroup root (``/<run folder name>`` in every hierarchy) and answer
    it for the kubelet's ``--cgroup-root``: pods then live under ``/<run>/kubepods``, where no
    other kubelet on the host looks. (Under one shared ``/kubepods``, each kubelet removes the
    pod cgroups it does not know, killing the other cluster's pods.)"""
    for hierarchy in _hierarchies():
        path = hierarchy / run.name
        path.mkdir(exist_ok=True)
        if hierarchy.name == "cpuset":  # a new cpuset has no CPUs or memory nodes until given
            for name in ("cpuset.cpus", "cpuset.mems"):
                (path / name).write_text((hierarchy / name).read_text())
    return f"/{run.name}"


def _remove_cgroups(run: Path) -> None:
    """Remove the cluster's cgroup root, deepest first (what still holds a process stays)."""
    for hierarchy in _hierarchies(("cgroup", "cgroup2")):
        root = hierarchy / run.name
        if not root.is_dir():
            continue
        for path in sorted((p for p in root.rglob("*") if p.is_dir()), reverse=True):
            with contextlib.suppress(OSError):
                path.rmdir()
        with contextlib.suppress(OSError):
            root.rmdir()


def _gone(pid: int, own: dict[int, subprocess.Popen[bytes]]) -> bool:
    if pid in own:
        return own[pid].poll() is not None
    return _start_time(pid) is None  # another process's child: gone, or a zombie


def end(pids: list[int], own: dict[int, subprocess.Popen[bytes]]) -> None:
    """SIGTERM to each (its own session's group, by pid), then SIGKILL to any still running
    after 5 s."""
    for signum, seconds in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 15.0)):
        running = [pid for pid in pids if not _gone(pid, own)]
        for pid in running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signum)
        deadline = time.monotonic() + seconds
        while any(not _gone(pid, own) for pid in running) and time.monotonic() < deadline:
            time.sleep(0.05)


def teardown(
    run: Path,
    pids: dict[str, int],
    bridge: str | None,
    engine: str | None,
    own: dict[int, subprocess.Popen[bytes]],
) -> None:
    """Stop the kubelet, remove the pods' containers, stop the rest (all by pid), unmount the
    kubelet's volumes, delete the bridge and (in the background) the run folder."""
    if "kubelet" in pids:
        end([pids["kubelet"]], own)
    if engine is not None and "dockerd" in pids:
        ids = subprocess.run(
            ["docker", "-H", engine, "ps", "-aq"], capture_output=True, text=True, check=False
        ).stdout.split()
        if ids:
            subprocess.run(
                ["docker", "-H", engine, "rm", "-f", *ids], capture_output=True, check=False
            )
    end(list(pids.values()), own)
    mounts = [
        line.split()[1]
        for line in Path("/proc/mounts").read_text().splitlines()
        if line.split()[1].startswith(f"{run}/")
    ]
    for mount in sorted(mounts, reverse=True):
        subprocess.run(["umount", "-l", mount], capture_output=True, check=False)
    if bridge is not None:
        subprocess.run(["ip", "link", "delete", bridge], capture_output=True, check=False)
    _remove_cgroups(run)
    # The engine's data root holds the unpacked images (thousands of files): removed in the
    # background, so the session does not wait for it.
    subprocess.Popen(["rm", "-rf", "--one-file-system", str(run)], start_new_session=True)
