"""Revocations reach the instance in seconds, not token lifetimes.

The control plane writes the org's revocation list in the org's Redis namespace and publishes
each entry on the org's revocation channel (``contract.revocations_key`` / ``_channel``). The
instance subscribes, loads the list, and from then on refuses, in memory and with no round
trip per request, any org token the list names: a user's tokens issued up to a moment (member
removed, user disabled, logout, password change, staff access revoked), every token up to a
moment (org suspended), or one token by ``jti``; a signing key retired in an emergency
(``kid:<kid>``) is handed to the verifier, which refuses every token it signed. Open
WebSockets are re-checked on every change and closed (4401) when their token is refused.

While the channel is down (Redis unreachable, not yet subscribed) the instance cannot know what
was revoked, so it degrades to a short token lifetime: only tokens issued within
``REVOCATION_FALLBACK_SECONDS`` are accepted. An instance without Redis has no channel; its
tokens live their full (5 minute) lifetime.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import structlog

from orgplane_wire.contract import (
    REVOCATION_FALLBACK_SECONDS,
    revocations_channel,
    revocations_key,
)

log = structlog.get_logger("orgplane.instance.revocations")
#: Seconds without a revocation after which Redis is pinged: how long a Redis that went silent
#: without closing the connection (a partition) can go unnoticed, besides the client's 5 s
#: socket timeout. A closed connection is noticed at once, since the follower waits on it
#: (until 2026-12 it polled every 0.5 s and pinged every 2 s, most of an idle instance's CPU
#: with Redis; docs/performance.md).
PING_SECONDS = 15.0
MAX_BACKOFF = 5.0


def _entry(field: Any, value: Any) -> tuple[str, int] | None:
    try:
        name = field.decode() if isinstance(field, bytes) else str(field)
        return name, int(value.decode() if isinstance(value, bytes) else value)
    except (ValueError, UnicodeDecodeError):
        return None


class Revocations:
    """The org's revocation list as this instance knows it."""

    def __init__(
        self, *, org_id: str, redis: Any = None, fallback: float = REVOCATION_FALLBACK_SECONDS
    ) -> None:
        self.org_id = org_id
        self.redis = redis
        self.fallback = fallback
        self.entries: dict[str, int] = {}
        #: Called with the kid of a signing key retired in an emergency (``kid:<kid>``).
        self.on_key_retired: Callable[[str], None] = lambda _kid: None
        #: Called on every Redis failure of the follower (the Redis errors metric).
        self.on_redis_error: Callable[[], None] = lambda: None
        #: Following the channel; without Redis there is nothing to follow.
        self.live = redis is None
        self._watched: dict[asyncio.Event, dict[str, Any]] = {}

    def refuses(self, claims: dict[str, Any], *, now: float | None = None) -> bool:
        """Whether the token of ``claims`` must be refused now."""
        iat = claims.get("iat")
        if not isinstance(iat, int):
            return True
        if not self.live:
            return (now if now is not None else time.time()) - iat > self.fallback
        for name in ("org", f"sub:{claims.get('sub')}"):
            until = self.entries.get(name)
            if until is not None and iat <= until:
                return True
        return f"jti:{claims.get('jti')}" in self.entries or f"kid:{claims.get('kid')}" in (
            self.entries
        )

    def watch(self, claims: dict[str, Any]) -> asyncio.Event:
        """An event set once the token of ``claims`` is refused (an open WebSocket's)."""
        event = asyncio.Event()
        self._watched[event] = claims
        if self.refuses(claims):
            event.set()
        return event

    def unwatch(self, event: asyncio.Event) -> None:
        """Stop watching (the socket closed)."""
        self._watched.pop(event, None)

    def _changed(self) -> None:
        for event, claims in list(self._watched.items()):
            if not event.is_set() and self.refuses(claims):
                event.set()

    def _set_live(self, live: bool) -> None:
        if self.live != live:
            self.live = live
            log.info("revocation channel " + ("followed" if live else "lost"), org_id=self.org_id)
        self._changed()

    def apply(self, field: Any, value: Any) -> None:
        """Take one entry into the list (newer moments win)."""
        entry = _entry(field, value)
        if entry is not None:
            name, moment = entry
            if name.startswith("kid:"):
                self.on_key_retired(name[4:])
            self.entries[name] = max(moment, self.entries.get(name, moment))
            self._changed()

    async def run(self) -> None:
        """Follow the channel until cancelled, reconnecting with backoff."""
        backoff = 0.25
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(revocations_channel(self.org_id))
                for field, value in (
                    await self.redis.hgetall(revocations_key(self.org_id))
                ).items():
                    self.apply(field, value)
                self._set_live(True)
                backoff = 0.25
                await self._listen(pubsub)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any Redis failure: degrade, then reconnect
                log.warning("revocation channel down", error=type(exc).__name__)
                self.on_redis_error()
            finally:
                self._set_live(False)
                await pubsub.aclose()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    async def _listen(self, pubsub: Any) -> None:
        """Apply each entry published on the channel, waiting for it without polling: a Redis
        that closes the connection ends the wait at once; one that goes silent is found by a
        ``PING`` after :data:`PING_SECONDS` without a message (it raises within the client's
        socket timeout)."""
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=PING_SECONDS)
            if message is None:
                await self.redis.ping()
            elif message.get("type") == "message":
                field, _, value = bytes(message["data"]).partition(b"=")
                self.apply(field, value)
