"""Browser sessions of an org instance, in the instance's memory.

A sign-in in progress is kept under its ``state`` (the PKCE verifier and where to go after),
for :data:`PENDING_SECONDS`; a session is kept under the SHA-256 of its cookie's value, with the
claims of the org token the sign-in bought. A session lives exactly as long as that token:
it ends at the token's ``exp``, and at once when the org's revocation list refuses the token
(the user logged out of the control plane, was removed from the org or disabled, the org was
suspended: ``org_instance.revocations``). Both maps are bounded (the oldest entry goes first),
so a flood of sign-ins costs a bounded amount of memory. One instance serves one org in one
process, so memory is the right place; a restart ends the sessions, and the next page load
signs the browser in again without a prompt (the control plane's session is still there).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

#: How long a sign-in may take between ``/auth/login`` and ``/auth/callback``.
PENDING_SECONDS: Final = 600
MAX_PENDING: Final = 1000
MAX_SESSIONS: Final = 10_000


@dataclass(frozen=True)
class Pending:
    """A sign-in in progress."""

    verifier: str
    next_path: str
    started: float


@dataclass(frozen=True)
class BrowserSession:
    """A signed-in browser: the org token's claims and who the ID token says the user is."""

    claims: dict[str, Any]
    email: str
    name: str

    @property
    def expires_at(self) -> int:
        """When the org token, and so the session, ends (unix seconds)."""
        return int(self.claims["exp"])


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class BrowserSessions:
    """The pending sign-ins and the sessions of this instance."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.pending: OrderedDict[str, Pending] = OrderedDict()
        self.sessions: OrderedDict[str, BrowserSession] = OrderedDict()

    def begin(self, verifier: str, next_path: str) -> str:
        """Remember a new sign-in; answers its ``state``."""
        state = secrets.token_urlsafe(24)
        self.pending[state] = Pending(verifier, next_path, self.clock())
        while len(self.pending) > MAX_PENDING:
            self.pending.popitem(last=False)
        return state

    def finish(self, state: str) -> Pending | None:
        """The sign-in ``state`` names, spent (once), or None when unknown or too old."""
        found = self.pending.pop(state, None)
        if found is None or self.clock() - found.started > PENDING_SECONDS:
            return None
        return found

    def open(self, session: BrowserSession) -> str:
        """Keep ``session``; answers the cookie value that names it."""
        value = secrets.token_urlsafe(32)
        self.sessions[_digest(value)] = session
        while len(self.sessions) > MAX_SESSIONS:
            self.sessions.popitem(last=False)
        return value

    def get(self, value: str, refuses: Callable[[dict[str, Any]], bool]) -> BrowserSession | None:
        """The live session the cookie ``value`` names; an expired or revoked one is ended."""
        if not value or len(value) > 100:
            return None
        key = _digest(value)
        session = self.sessions.get(key)
        if session is None:
            return None
        if session.expires_at <= self.clock() or refuses(session.claims):
            del self.sessions[key]
            return None
        return session

    def end(self, value: str) -> None:
        """End the session the cookie ``value`` names (if any)."""
        self.sessions.pop(_digest(value), None)
