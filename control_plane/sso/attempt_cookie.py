"""The browser's half of a sign-in through a provider: state, nonce and PKCE verifier.

Between ``/ui/auth/sso/<slug>/start`` and the provider's redirect back to ``.../callback`` the
browser holds ``orgplane_sso``: an HttpOnly cookie scoped to ``/ui/auth/sso``, encrypted and
authenticated with the deployment secret (purpose ``orgplane sso attempt v1``), valid for
:data:`ATTEMPT_TTL` seconds. It is ``SameSite=Lax``: the provider's redirect back is a
cross-site top-level navigation, which Lax cookies accompany and Strict ones do not. Any
replica can finish a sign-in another started; the callback clears the cookie, so a state is
answered once per browser.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from functools import cache
from typing import Final

from litestar.datastructures import Cookie

from control_plane.runtime import resolve_secret
from control_plane.settings import Settings
from control_plane.sso.base import Attempt
from orgplane_wire.secret_box import SecretBox

ATTEMPT_COOKIE: Final = "orgplane_sso"
ATTEMPT_PATH: Final = "/ui/auth/sso"
ATTEMPT_TTL: Final = 600


@dataclass(frozen=True)
class PendingSso:
    """A started sign-in: which provider, its secrets, and where to go afterwards."""

    slug: str
    attempt: Attempt
    next_path: str


def new_attempt(redirect_uri: str) -> Attempt:
    """Fresh random state, nonce and PKCE verifier (RFC 7636: 43 to 128 characters)."""
    return Attempt(
        state=secrets.token_urlsafe(32),
        nonce=secrets.token_urlsafe(32),
        code_verifier=secrets.token_urlsafe(64),
        redirect_uri=redirect_uri,
    )


@cache
def _box(secret: str) -> SecretBox:
    return SecretBox(secret, purpose="orgplane sso attempt v1")


def attempt_cookie(settings: Settings, pending: PendingSso, *, secure: bool) -> Cookie:
    """The cookie that carries ``pending`` to the callback."""
    a = pending.attempt
    payload = {
        "p": pending.slug,
        "s": a.state,
        "n": a.nonce,
        "v": a.code_verifier,
        "r": a.redirect_uri,
        "next": pending.next_path,
        "exp": int(time.time()) + ATTEMPT_TTL,
    }
    value = _box(resolve_secret(settings)).encrypt(json.dumps(payload).encode())
    return Cookie(key=ATTEMPT_COOKIE, value=value, path=ATTEMPT_PATH, httponly=True,
                  samesite="lax", secure=secure, max_age=ATTEMPT_TTL)  # fmt: skip


def cleared_attempt(*, secure: bool) -> Cookie:
    """The cookie that makes the browser forget a started sign-in."""
    return Cookie(key=ATTEMPT_COOKIE, value="", path=ATTEMPT_PATH, httponly=True,
                  samesite="lax", secure=secure, max_age=0)  # fmt: skip


def read_attempt(settings: Settings, value: str | None) -> PendingSso | None:
    """The started sign-in of a cookie value, or None (absent, forged or expired)."""
    if not value or len(value) > 3000:
        return None
    try:
        p = json.loads(_box(resolve_secret(settings)).decrypt(value))
        attempt = Attempt(str(p["s"]), str(p["n"]), str(p["v"]), str(p["r"]))
        pending = PendingSso(str(p["p"]), attempt, str(p["next"]))
        expired = int(p["exp"]) < time.time()
    except (ValueError, KeyError, TypeError):
        return None
    return None if expired else pending
