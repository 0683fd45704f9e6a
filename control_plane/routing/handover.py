"""Hibernation hands an org's hosts to the wake endpoint before its instance stops.

Hibernating commits the org as ``stopping`` first, so the HTTP provider's next answer routes its
hosts to the wake endpoint, above the org's own router (``provisioners.traefik.ASLEEP_PRIORITY``).
Stopping the instance before Traefik has that route would leave requests going to a stopped
instance: Traefik's own ``502``, or a ``504`` after its dial timeout, instead of a wake. So:

- every answer to Traefik's poll notes, in the ``routing`` store (Redis with several replicas),
  that Traefik polls, and for each org being hibernated the first time its wake route was
  served (:func:`note_served`);
- the reconciler stops the instance once :func:`handed_over` says Traefik has applied that
  answer (served, plus Traefik's providers throttle), at once when no Traefik polls the HTTP
  provider, and at the latest :data:`HANDOVER_BOUND` after the hibernation began.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Final

from litestar.stores.base import Store
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.db.models import Org, utcnow

#: Traefik applies a configuration it fetched within its providers throttle (``--providers.
#: providersThrottleDuration``, 2 s unless set), plus a margin for the reload.
TRAEFIK_APPLIES: Final = timedelta(seconds=2.5)
#: Traefik counts as polling this long after its last poll (keep it above ``pollInterval``).
POLLING_TTL: Final = 30
#: The longest an instance's stop waits for its hosts to be handed over.
HANDOVER_BOUND: Final = timedelta(seconds=30)
_POLLED = "polled"
_KEEP: Final = 600  # seconds a served note is kept (well past HANDOVER_BOUND)


def _served_key(org_id: str, hibernated_at: datetime) -> str:
    """Per hibernation: an answer served for an earlier one proves nothing about this one."""
    return f"wake-served:{org_id}:{hibernated_at.timestamp():.6f}"


async def note_served(store: Store, db: AsyncSession, asleep: Sequence[str]) -> None:
    """Traefik was just served a configuration in which the orgs ``asleep`` go to the wake
    endpoint: note the poll, and the first such answer for each org still being hibernated."""
    await store.set(_POLLED, utcnow().isoformat(), expires_in=POLLING_TTL)
    if not asleep:
        return
    stopping = select(Org.id, Org.hibernated_at).where(
        col(Org.phase) == "stopping", col(Org.hibernated_at).is_not(None)
    )
    wanted = set(asleep)
    for org_id, hibernated_at in (await db.exec(stopping)).all():
        if org_id not in wanted or hibernated_at is None:
            continue
        key = _served_key(org_id, hibernated_at)
        if not await store.exists(key):
            await store.set(key, utcnow().isoformat(), expires_in=_KEEP)


async def handed_over(store: Store, org: Org) -> bool:
    """Whether the hibernating ``org``'s instance may stop: Traefik has applied the wake route,
    or nothing polls the HTTP provider, or :data:`HANDOVER_BOUND` has passed."""
    now = utcnow()
    if await store.get(_POLLED) is None:
        return True
    began = org.hibernated_at or now
    if now - began >= HANDOVER_BOUND:
        return True
    served = await store.get(_served_key(org.id, began))
    if served is None:
        return False
    return now - datetime.fromisoformat(served.decode()) >= TRAEFIK_APPLIES
