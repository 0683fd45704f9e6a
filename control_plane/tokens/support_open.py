"""Support access through "Open": the stated reason, held between the UI and the instance's
sign-in.

A platform admin who opens an org they are not a member of gives a reason in the UI. The UI
checks it (and the org's approval rule and the staff MFA rule) and keeps it here, under the
admin and the org, for :data:`TTL` seconds; the browser then goes to the instance's
``/auth/login`` like a member's, and the token grant of the instance's built-in client takes
the reason back (once) for the RFC 8693 exchange, which checks everything again, mints the
staff token and records the support access. So no token travels in a URL, and the access is
audited once, for the token the instance holds.

The store is the runtime's ``support_open`` (Redis when ``ORGPLANE_REDIS_URL`` is set, so any
replica can finish the sign-in).
"""

from __future__ import annotations

from typing import Final

from litestar.stores.base import Store

#: Seconds between "Open" in the UI and the instance's sign-in coming back for the token.
TTL: Final = 120


def _key(user_id: str, org_id: str) -> str:
    return f"{user_id}:{org_id}"


async def remember(store: Store, *, user_id: str, org_id: str, reason: str) -> None:
    """Keep the checked ``reason`` of a staff "Open" for the instance's sign-in."""
    await store.set(_key(user_id, org_id), reason.encode(), expires_in=TTL)


async def take(store: Store, *, user_id: str, org_id: str) -> str | None:
    """The reason a staff "Open" left for this sign-in, spent; None when there is none."""
    key = _key(user_id, org_id)
    value = await store.get(key)
    if value is None:
        return None
    await store.delete(key)
    return value.decode()
