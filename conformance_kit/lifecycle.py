"""The clauses about the container's life: restart with its data kept, graceful stop."""

from __future__ import annotations

import secrets
import time

import httpx

from conformance_kit.container import KitContainer
from conformance_kit.fake_cp import FakeControlPlane
from conformance_kit.heartbeats import NO_BEAT, wait_for
from conformance_kit.http_checks import wait_probe
from conformance_kit.report import Report

MARKER = ".orgplane-conformance-marker"
#: Files a clean stop may remove by design (SQLite's write-ahead log and lock files): their
#: absence after a restart is no data lost.
TRANSIENT_SUFFIXES = ("-wal", "-shm", "-journal")
#: The contract's deadline between SIGTERM and exit.
STOP_DEADLINE = 10.0


def check_restart(
    report: Report,
    box: KitContainer,
    cp: FakeControlPlane,
    *,
    timeout: float,
    heartbeats: bool = True,
    stop_deadline: float = STOP_DEADLINE,
) -> None:
    """``restart.data-kept`` and ``restart.heartbeats``: a marker written into the data volume
    and the files the instance wrote survive ``docker restart``; it heartbeats again after."""
    content = secrets.token_hex(16).encode()
    box.write_data_file(MARKER, content)
    before = [
        name
        for name in box.data_files()
        if not name.endswith(MARKER) and not name.endswith(TRANSIENT_SUFFIXES)
    ]
    box.restart(timeout=max(1, round(stop_deadline)))
    restarted = time.monotonic()
    endpoint = box.endpoint()
    with httpx.Client(timeout=5.0) as client:
        status, waited = wait_probe(client, f"{endpoint}/healthz", box.name, timeout)
    kept = box.read_data_file(MARKER) == content
    after = box.data_files()
    lost = sorted(name for name in before if name not in after)
    report.add(
        "restart.data-kept",
        "after `docker restart` the data volume is intact and the instance serves again",
        kept and not lost and status == 200,
        f"marker {'kept' if kept else 'LOST'}; {len(before)} files of the instance before, "
        f"{len(lost)} lost{' ' + ', '.join(lost[:3]) if lost else ''}; /healthz -> {status} "
        f"{waited:.1f} s after the restart",
    )
    if not heartbeats:
        report.add("restart.heartbeats", "see heartbeat.arrival", False, NO_BEAT)
        return
    again = wait_for(
        cp, lambda beats: any(b.at >= restarted and b.answered == 200 for b in beats), timeout
    )
    first = next((b for b in cp.snapshot() if b.at >= restarted and b.answered == 200), None)
    report.add(
        "restart.heartbeats",
        "the restarted instance heartbeats again",
        again,
        f"first heartbeat {first.at - restarted:.1f} s after the restart"
        if first
        else f"no heartbeat within {timeout:g} s of the restart",
    )


def check_stop(report: Report, box: KitContainer, *, deadline: float = STOP_DEADLINE) -> None:
    """``stop.graceful``: SIGTERM -> exit status 0 within the deadline."""
    took, status = box.terminate(deadline)
    report.add(
        "stop.graceful",
        f"SIGTERM stops the instance with exit status 0 within {deadline:g} s",
        status == 0 and took <= deadline,
        f"exited with status {status} {took:.1f} s after SIGTERM"
        if status is not None
        else f"still running {deadline:g} s after SIGTERM (killed)",
    )
