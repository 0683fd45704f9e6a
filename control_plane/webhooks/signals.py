"""Security signals: a burst of refused token exchanges or forged tokens from one address, or
naming one user, raises a ``security.signal`` webhook event.

Refusals are counted in fixed windows of ``ORGPLANE_SECURITY_SIGNAL_WINDOW`` seconds by the
runtime's throttle (one atomic increment in Redis shared by the replicas, or memory), per
address and per user (the subject the token claims: a forged token's claim is all there is).
The refusal that reaches ``ORGPLANE_SECURITY_SIGNAL_THRESHOLD`` in a window writes one event
(in a session of its own: the refused request's transaction has nothing to commit); later ones
in that window do not.
Counting never fails the request it counts: a store or database error is logged and dropped.
"""

from __future__ import annotations

from typing import Any

import jwt
import structlog

from control_plane.ratelimit import Limit
from control_plane.runtime import Runtime
from control_plane.store_errors import log_job_failure
from control_plane.webhooks.events import emit

log = structlog.get_logger("orgplane.security")


def claimed_subject(token: str | None) -> str:
    """The ``sub`` a JWT claims, unverified ("" when there is none): who a refused or forged
    token was made out to."""
    if not token or len(token) > 8192:
        return ""
    try:
        claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return ""
    subject = claims.get("sub")
    return subject[:64] if isinstance(subject, str) else ""


async def count_refusal(runtime: Runtime, *, kind: str, ip: str, user_id: str = "") -> None:
    """Count one refusal (``kind``: ``token_exchange`` or ``forged_token``); see the module."""
    fleet = runtime.settings.fleet
    limit = Limit("security-signal", fleet.security_signal_threshold, fleet.security_signal_window)
    try:
        for scope, value in (("ip", ip), ("user_id", user_id)):
            if not value:
                continue
            count = await runtime.throttle.hit_count(limit, f"{scope}:{value}")
            if count != fleet.security_signal_threshold:
                continue
            data = {
                "scope": scope,
                scope: value,
                "kind": kind,
                "count": count,
                "window_seconds": fleet.security_signal_window,
            }
            async with runtime.sessions() as db:
                emit(db, "security.signal", data)
                await db.commit()
            log.warning("security signal", **data)
    except Exception as exc:
        log_job_failure("security signal not counted", exc)
