"""Per-instance heartbeat state in the runtime's store: the flood count and the last seq.

One entry per org (``heartbeat:last:<org_id>``): read and written back when a heartbeat arrives
(the attempt counts even if the credential or the body turns out bad), and written once more
for an accepted heartbeat that did not write the Instance row. Two or three store round trips
per heartbeat (Redis with several replicas). The entry holds:

* the authenticated attempts in the current fixed one-minute window (a bad body included), so
  a flooding instance is answered 429 before its heartbeat is processed; failed
  authentications count against their sender instead (``instances/routes.py``), never here;
* the run and ``seq`` of the last accepted heartbeat, so a replay is caught even when that
  heartbeat was not written to the Instance row (see :mod:`control_plane.instances.heartbeat`).

Like the store-backed limiters elsewhere, the read and the write are not atomic: two heartbeats
of one org at the same moment may count as one. If the entry is lost the row's ``seq`` still
protects usage, because usage deltas are computed against the row.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import msgspec

from control_plane.runtime import Runtime
from orgplane_wire.problems import TooManyRequests

#: Heartbeats (and failed attempts) accepted per instance per minute before 429: the default
#: interval sends 6; restarts and retries after an outage stay far below this.
HEARTBEATS_PER_MINUTE = 60
WINDOW_SECONDS = 60


class GateEntry(msgspec.Struct, omit_defaults=True):
    """What the store keeps for one org's instance."""

    window: int = 0
    attempts: int = 0
    run: str = ""
    seq: int = 0


@dataclass
class HeartbeatGate:
    """Reads, checks and writes one org's :class:`GateEntry`."""

    runtime: Runtime
    org_id: str
    entry: GateEntry

    @classmethod
    async def open(cls, runtime: Runtime, *, org_id: str) -> HeartbeatGate:
        """Load the org's entry (one store read); a missing or unreadable one starts empty."""
        raw = await runtime.rate_limits.get(_key(org_id))
        try:
            entry = msgspec.json.decode(raw, type=GateEntry) if raw else GateEntry()
        except (msgspec.DecodeError, msgspec.ValidationError):
            entry = GateEntry()
        return cls(runtime, org_id, entry)

    def admit(self) -> None:
        """Count this attempt; 429 ``rate_limited`` once the minute's allowance is used up."""
        window = int(time.time() // WINDOW_SECONDS)
        if self.entry.window != window:
            self.entry.window, self.entry.attempts = window, 0
        if self.entry.attempts >= HEARTBEATS_PER_MINUTE:
            retry = WINDOW_SECONDS - int(time.time() % WINDOW_SECONDS)
            raise TooManyRequests(
                "Too many heartbeats. Try again later.", retry_after=max(retry, 1)
            )
        self.entry.attempts += 1

    def last_seq(self, run: str) -> int:
        """The last accepted ``seq`` of ``run`` (0 when the entry knows another run or none)."""
        return self.entry.seq if self.entry.run == run else 0

    def accepted(self, *, run: str, seq: int) -> None:
        """Remember an accepted heartbeat (saved by :meth:`save`)."""
        self.entry.run, self.entry.seq = run, seq

    async def save(self) -> None:
        """Write the entry back (one store write); it outlives a run's silence by an hour."""
        interval = self.runtime.settings.provisioning.heartbeat_interval
        await self.runtime.rate_limits.set(
            _key(self.org_id),
            msgspec.json.encode(self.entry),
            expires_in=max(3600, int(10 * interval)),
        )


def _key(org_id: str) -> str:
    return f"heartbeat:last:{org_id}"
