"""Whether the engine's containers and volumes may have changed since the last listing.

The reconciler lists every instance on each full pass (every 2 s by default). On Docker that is
a container list and a volume list, and with hundreds of idle orgs the engine spent more CPU
answering them than on anything the orgs did (docs/performance.md, *Idle CPU per org*). Yet an
idle fleet changes only when the engine says so: :class:`EngineWatch` follows the engine's
event stream (``GET /events``, one long-lived connection the engine writes to only when
something happens) in a thread, and the provisioner lists again only when an event arrived,
when its own calls changed something, when the stream is down, or after ``max_age`` seconds
whatever happens. Any container or volume event on the engine counts, ours or not (volume
events carry no labels to filter on): it costs a listing, never a stale answer.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from provisioners.base import InstanceStatus

#: Event types that can change what a listing says.
WATCHED_TYPES = ("container", "volume")
#: States that change only with an engine event (a ``starting`` one is probed over HTTP).
SETTLED_STATES = frozenset({"running", "stopped", "failed", "absent"})


class EngineWatch:
    """Follows the engine's events in a daemon thread; see the module docstring."""

    def __init__(self, *, max_age: float) -> None:
        self.max_age = max_age
        self._lock = threading.Lock()
        self._changed = True
        self._listed_at = float("-inf")
        self._stream: Any = None
        self._thread: threading.Thread | None = None
        self._listing: list[InstanceStatus] | None = None

    def ensure_started(self, client: Any) -> None:
        """Start following the engine (again, after the stream ended); call before listing.
        Blocking (it opens the stream). When the engine refuses, nothing is reused."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._changed = True  # whatever happened while nobody followed
            try:
                self._stream = client.events(decode=True, filters={"type": list(WATCHED_TYPES)})
            except Exception:  # engine away or an SDK without events: list every time
                return
            self._thread = threading.Thread(
                target=self._follow, args=(self._stream,), name="docker-events", daemon=True
            )
            self._thread.start()

    def _follow(self, stream: Any) -> None:
        try:
            for _event in stream:
                self.changed()
        except Exception:  # noqa: S110 - the stream broke or was closed: list again
            pass
        finally:
            self.changed()

    def changed(self) -> None:
        """Something changed (an event, or one of the provisioner's own calls)."""
        self._changed = True

    def reuse(self) -> list[InstanceStatus] | None:
        """The last listing when nothing can have changed since; else None, and from now on
        events count against the listing the caller makes now (and hands to :meth:`keep`)."""
        with self._lock:
            following = self._thread is not None and self._thread.is_alive()
            stale = time.monotonic() - self._listed_at >= self.max_age
            if following and not self._changed and not stale and self._listing is not None:
                return list(self._listing)
            # Cleared before the engine is asked: an event that arrives while it answers sets
            # it again, so the next pass lists once more rather than trust a stale answer.
            self._changed = False
            self._listed_at = time.monotonic()
            self._listing = None
            return None

    def keep(self, statuses: list[InstanceStatus]) -> list[InstanceStatus]:
        """Remember a fresh listing for :meth:`reuse` when every instance in it had settled."""
        if all(status.state in SETTLED_STATES for status in statuses):
            with self._lock:
                self._listing = list(statuses)
        return statuses

    def close(self) -> None:
        """Stop following (closes the stream; the thread ends with it)."""
        with self._lock:
            stream, thread = self._stream, self._thread
            self._stream = self._thread = None
        if stream is not None:
            stream.close()
        if thread is not None:
            thread.join(timeout=5)
