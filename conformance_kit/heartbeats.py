"""The heartbeat clauses: arrival, body, credential, interval, backoff and recovery.

The kit's control plane answers every heartbeat with a short ``interval`` (0.5 s by default;
the instance starts with a longer one in its environment, so honouring the answer shows). Gaps
are measured between arrivals; the instance's own jitter (±10 %) and a little network and
scheduling slack are allowed for, never a beat faster than the interval allows.
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Callable
from typing import Any

from conformance_kit.fake_cp import Beat, FakeControlPlane
from conformance_kit.report import Report
from conformance_kit.schema import problems, schema_in_use
from orgplane_wire.contract import HEARTBEAT_JITTER, HeartbeatBody, longest_heartbeat_gap

BODY_SCHEMA = "heartbeat-body.schema.json"
#: The evidence of a heartbeat clause that could not be checked.
NO_BEAT = "not checked: no heartbeat arrived (see heartbeat.arrival)"
#: Slack on top of the jitter, in seconds. A gap is measured between arrivals, and an instance
#: waits its interval after the answer to the last beat, so no gap is shorter than that wait
#: (``EARLY`` covers clock reads only); a gap may be longer by the time a request takes on a
#: busy machine (``LATE``). ``LATE`` stays well under the start interval the instance is given
#: (2 s), so an instance that ignores the answer's 0.5 s still fails.
EARLY, LATE = 0.05, 0.4


def wait_for(cp: FakeControlPlane, done: Callable[[list[Beat]], bool], timeout: float) -> bool:
    """Poll the recorded heartbeats until ``done`` or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while not done(cp.snapshot()):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def gaps(beats: list[Beat]) -> list[float]:
    """Seconds between consecutive arrivals."""
    return [b.at - a.at for a, b in itertools.pairwise(beats)]


def _fmt(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.2f}" for v in values) + "]"


def body_problems(beat: Beat, *, org_id: str, instance_id: str) -> str:
    """Why a heartbeat body breaks the contract ('' when it does not)."""
    found = problems(HeartbeatBody, beat.body, schema=BODY_SCHEMA)
    if found:
        return found
    body: Any = beat.body
    if body["org_id"] != org_id or body["instance_id"] != instance_id:
        return f"names org {body['org_id']!r} / instance {body['instance_id']!r}"
    return ""


def check_heartbeats(
    report: Report,
    cp: FakeControlPlane,
    *,
    org_id: str,
    instance_id: str,
    since: float,
    first_timeout: float,
    window: int = 6,
) -> bool:
    """``heartbeat.arrival/credential/schema/interval``; False when none arrived at all.

    ``since`` is the ``time.monotonic()`` the instance was started at."""
    interval = cp.interval
    arrived = wait_for(cp, lambda beats: bool(beats), first_timeout)
    beats = cp.snapshot()
    report.add(
        "heartbeat.arrival",
        f"heartbeats reach {cp.base_url}/api/v1/instances/heartbeat once the instance is up",
        arrived,
        f"first heartbeat {beats[0].at - since:.1f} s after the container started"
        if beats
        else f"no heartbeat within {first_timeout:g} s",
    )
    if not arrived:
        for clause in ("credential", "schema", "interval"):
            report.add(f"heartbeat.{clause}", "see heartbeat.arrival", False, NO_BEAT)
        return False
    # The beats after the first accepted answer follow the answer's interval.
    start = len(beats)
    wait_for(cp, lambda b: len(b) >= start + window + 1, (window + 2) * interval * 3 + 5)
    beats = cp.snapshot()
    report.add(
        "heartbeat.credential",
        "every heartbeat carries `Authorization: Bearer <ORGPLANE_INSTANCE_CREDENTIAL>`",
        all(b.credential_ok for b in beats),
        f"{sum(b.credential_ok for b in beats)}/{len(beats)} heartbeats had the credential",
    )
    problems = [
        f"#{i}: {p}"
        for i, b in enumerate(beats)
        if (p := body_problems(b, org_id=org_id, instance_id=instance_id))
    ]
    seqs = [b.body.get("seq") for b in beats if isinstance(b.body, dict)]
    rising = all(isinstance(s, int) for s in seqs) and seqs == sorted(set(seqs))  # type: ignore[type-var]
    report.add(
        "heartbeat.schema",
        "every body is a HeartbeatBody for this org and instance, seq strictly increasing",
        not problems and rising,
        f"{len(beats)} bodies checked against HeartbeatBody"
        + (f" and {BODY_SCHEMA}" if schema_in_use(BODY_SCHEMA) else "")
        + "; "
        + ("; ".join(problems[:3]) if problems else "all valid")
        + ("" if rising else f"; seq not increasing: {seqs[:10]}"),
    )
    measured = gaps(beats[start - 1 :])[:window]
    low = interval * (1 - HEARTBEAT_JITTER) - EARLY
    high = interval * (1 + HEARTBEAT_JITTER) + LATE
    median = statistics.median(measured) if measured else 0.0
    report.add(
        "heartbeat.interval",
        f"beats follow the answer's interval ({interval:g} s, ±{HEARTBEAT_JITTER:.0%}), "
        "never faster",
        len(measured) >= 3 and min(measured) >= low and median <= high,
        f"gaps {_fmt(measured)} s; allowed min {low:.2f}, median <= {high:.2f}",
    )
    return True


def check_backoff(report: Report, cp: FakeControlPlane, *, outage: float) -> None:
    """``heartbeat.backoff`` while the kit answers 503, ``heartbeat.recovery`` after."""
    interval = cp.interval
    cap = longest_heartbeat_gap(interval)
    cp.available = False
    began = time.monotonic()
    time.sleep(outage)
    cp.available = True
    failing = [b for b in cp.snapshot() if b.at >= began and b.answered == 503]
    measured = gaps(failing)
    low = interval * (1 - HEARTBEAT_JITTER) - EARLY
    grows = len(measured) >= 2 and measured[-1] >= 1.5 * measured[0]
    report.add(
        "heartbeat.backoff",
        f"while the control plane answers 503, gaps grow from the interval up to the cap "
        f"({cap:.2f} s with jitter), never shorter than the interval",
        grows and min(measured) >= low and max(measured) <= cap + LATE,
        f"{len(failing)} refused heartbeats in a {outage:g} s outage, gaps {_fmt(measured)} s",
    )
    back = time.monotonic()
    recovered = wait_for(
        cp,
        lambda b: sum(x.at >= back and x.answered == 200 for x in b) >= 3,
        cap + 3 * interval + 5,
    )
    after = [b for b in cp.snapshot() if b.at >= back and b.answered == 200]
    first = after[0].at - back if after else None
    steady = gaps(after[:3])
    report.add(
        "heartbeat.recovery",
        "once the control plane answers again, heartbeats resume and return to the interval",
        recovered and bool(steady) and max(steady) <= interval * (1 + HEARTBEAT_JITTER) + LATE,
        (f"first accepted heartbeat {first:.1f} s after recovery, then gaps {_fmt(steady)} s")
        if first is not None
        else "no accepted heartbeat after recovery",
    )
