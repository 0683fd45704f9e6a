"""The UI's pending sign-in: the password was right, the one-time code is still to come.

Between the two steps the browser holds ``orgplane_pending_login``: an HttpOnly cookie, scoped
to ``/ui/login``, encrypted and authenticated with the deployment secret (purpose ``orgplane
pending login v1``), naming the user, their session version and where to go next, and valid
for :data:`PENDING_TTL` seconds. It holds no password and grants nothing but the right to try
codes (or a passkey), which the login limits count like whole attempts. Its random
``login_id`` is what a passkey challenge of the sign-in is bound to.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from functools import cache
from typing import Final

from litestar.datastructures import Cookie

from control_plane.runtime import resolve_secret
from control_plane.settings import Settings
from orgplane_wire.secret_box import SecretBox

PENDING_COOKIE: Final = "orgplane_pending_login"
PENDING_PATH: Final = "/ui/login"
PENDING_TTL: Final = 300
FIRST_FACTORS: Final = frozenset({"pwd", "fed"})


@dataclass(frozen=True)
class Pending:
    user_id: str
    session_version: int
    next_path: str
    login_id: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    #: How the first step was passed: ``pwd`` (a password) or ``fed`` (an identity provider).
    first: str = "pwd"

    def amr(self, second_step: tuple[str, ...]) -> tuple[str, ...]:
        """The sign-in's ``amr``: the second step's, with this sign-in's own first factor."""
        return tuple(self.first if method == "pwd" else method for method in second_step)


@cache
def _pending_box(secret: str) -> SecretBox:
    return SecretBox(secret, purpose="orgplane pending login v1")


def pending_cookie(settings: Settings, pending: Pending, *, secure: bool) -> Cookie:
    """The cookie that carries ``pending`` to the second step."""
    payload = {
        "sub": pending.user_id,
        "sv": pending.session_version,
        "next": pending.next_path,
        "lid": pending.login_id,
        "f": pending.first,
        "exp": int(time.time()) + PENDING_TTL,
    }
    value = _pending_box(resolve_secret(settings)).encrypt(json.dumps(payload).encode())
    return Cookie(
        key=PENDING_COOKIE,
        value=value,
        path=PENDING_PATH,
        httponly=True,
        samesite="strict",
        secure=secure,
        max_age=PENDING_TTL,
    )


def cleared_pending(*, secure: bool) -> Cookie:
    """The cookie that makes the browser forget a pending sign-in."""
    return Cookie(
        key=PENDING_COOKIE,
        value="",
        path=PENDING_PATH,
        httponly=True,
        samesite="strict",
        secure=secure,
        max_age=0,
    )


def read_pending(settings: Settings, value: str | None) -> Pending | None:
    """The pending sign-in of a cookie value, or None (absent, forged or expired)."""
    if not value or len(value) > 2000:
        return None
    try:
        payload = json.loads(_pending_box(resolve_secret(settings)).decrypt(value))
        pending = Pending(
            str(payload["sub"]),
            int(payload["sv"]),
            str(payload["next"]),
            str(payload["lid"]),
            str(payload["f"]),
        )
        expired = int(payload["exp"]) < time.time() or pending.first not in FIRST_FACTORS
    except (ValueError, KeyError, TypeError):  # only our own payloads decrypt; be strict anyway
        return None
    return None if expired else pending
