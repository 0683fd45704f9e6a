"""Hibernation hands an org's hosts to the wake endpoint before its instance stops.

Hibernating commits the org as ``stopping`` first, so the HTTP provider's next answer routes its
hosts to the wake endpoint, above the org's own router (``provisioners.traefik.ASLEEP_PRIORITY``).
Stopping the instance before Traefik has that route would leave requests going to a stopped
instance: Traefik's own ``502``, or a ``504`` after its dial timeout, instead of a wake. So:

- every answer to Traefik's poll notes, in the ``routing`` store (Redis with several replicas),
  that Traefik polls, and for each org being hibernated the first time its wake route was
  served (:func:`note_served`);
- the reconciler stops the instance once :func:`handed_over` says Traefik has applied that
  answer, at once when no Traefik polls the HTTP provider, and at the latest
  :data:`HANDOVER_BOUND` after the hibernation began.

"Applied" is observed when the control plane can reach Traefik's entry point
(``ORGPLANE_PROXY_URL``): once the answer was served, a probe request for the org's host goes
through Traefik, and only the wake endpoint can answer it with the acknowledgement
(:func:`probe_ack`, a MAC under the deployment secret that the instance, which sees the probe,
cannot compute). Without that URL it is estimated: served, plus :data:`TRAEFIK_APPLIES` for
Traefik's providers throttle and reload, which a heavily loaded host can outlast.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Final

import httpx
import structlog
from litestar.stores.base import Store
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.db.models import Org, utcnow
from control_plane.db.phases import OrgPhase
from control_plane.routing.hostnames import subdomain_of
from control_plane.settings import Settings

#: Traefik applies a configuration it fetched within its providers throttle (``--providers.
#: providersThrottleDuration``, 2 s unless set), plus a margin for the reload.
TRAEFIK_APPLIES: Final = timedelta(seconds=2.5)
#: Traefik counts as polling this long after its last poll (keep it above ``pollInterval``).
POLLING_TTL: Final = 30
#: The longest an instance's stop waits for its hosts to be handed over.
HANDOVER_BOUND: Final = timedelta(seconds=30)
#: Header of the probe request (its token) and of the wake endpoint's answer (the ack).
PROBE_HEADER: Final = "X-Orgplane-Handover"
ACK_HEADER: Final = "X-Orgplane-Handover-Ack"
#: Seconds one probe through Traefik may take.
PROBE_TIMEOUT: Final = 5.0
_POLLED = "polled"
log = structlog.get_logger(__name__)
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
        col(Org.phase) == OrgPhase.STOPPING, col(Org.hibernated_at).is_not(None)
    )
    wanted = set(asleep)
    for org_id, hibernated_at in (await db.exec(stopping)).all():
        if org_id not in wanted or hibernated_at is None:
            continue
        key = _served_key(org_id, hibernated_at)
        if not await store.exists(key):
            await store.set(key, utcnow().isoformat(), expires_in=_KEEP)


#: Whether a request for the org's host, sent through Traefik, reaches the wake endpoint.
Probe = Callable[[Org], Awaitable[bool]]


async def handed_over(store: Store, org: Org, *, probe: Probe | None = None) -> bool:
    """Whether the hibernating ``org``'s instance may stop: Traefik has applied the wake route
    (seen by ``probe`` when given, else estimated), or :data:`HANDOVER_BOUND` has passed.

    Without a probe, it may also stop at once when nothing polled the HTTP provider lately (no
    Traefik in front). With one, a Traefik is declared (``ORGPLANE_PROXY_URL``), and a quiet
    spell of its HTTP provider (starting up, or backing off after errors while the control plane
    was not answering yet) is a reason to wait, not to stop: stopping then left the org's host
    routed to a stopped container."""
    now = utcnow()
    began = org.hibernated_at or now
    if now - began >= HANDOVER_BOUND:
        return True
    if probe is None and await store.get(_POLLED) is None:
        return True
    served = await store.get(_served_key(org.id, began))
    if served is None:
        return False  # not probed before: the probe would reach the running instance
    if probe is not None:
        return await probe(org)
    return now - datetime.fromisoformat(served.decode()) >= TRAEFIK_APPLIES


def _mac(secret: str, message: str) -> str:
    key = hashlib.sha256(b"orgplane handover probe v1\0" + secret.encode()).digest()
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def probe_token(secret: str, *, org_id: str, hibernated_at: datetime) -> str:
    """The probe's token for one hibernation of one org (any replica derives the same)."""
    return _mac(secret, f"probe:{org_id}:{hibernated_at.timestamp():.6f}")


def probe_ack(secret: str, token: str) -> str:
    """The wake endpoint's answer to a probe carrying ``token``."""
    return _mac(secret, f"ack:{token}")


def is_probe(secret: str, org: Org, presented: str) -> bool:
    """Whether ``presented`` is the probe token of ``org``'s current hibernation."""
    if org.hibernated_at is None:
        return False
    token = probe_token(secret, org_id=org.id, hibernated_at=org.hibernated_at)
    return hmac.compare_digest(token.encode(), presented.encode())


def traefik_probe(*, secret: str, proxy_url: str, host_of: Callable[[Org], str]) -> Probe:
    """A :data:`Probe` that sends ``GET /`` for ``host_of(org)`` to Traefik at ``proxy_url``.

    Certificates are not verified: the request goes to the platform's own proxy by its
    internal name, and carries nothing but the probe token."""

    async def probe(org: Org) -> bool:
        if org.hibernated_at is None:
            return False
        token = probe_token(secret, org_id=org.id, hibernated_at=org.hibernated_at)
        headers = {"Host": host_of(org), PROBE_HEADER: token}
        try:
            async with httpx.AsyncClient(verify=False, timeout=PROBE_TIMEOUT) as client:  # noqa: S501
                answer = await client.get(f"{proxy_url.rstrip('/')}/", headers=headers)
        except httpx.HTTPError as exc:
            log.info("wake route not confirmed yet", org_id=org.id, error=type(exc).__name__)
            return False
        ack = probe_ack(secret, token).encode()
        seen = hmac.compare_digest(answer.headers.get(ACK_HEADER, "").encode(), ack)
        if seen:
            log.info("wake route confirmed through the proxy", org_id=org.id, host=headers["Host"])
        else:
            log.info("wake route not confirmed yet", org_id=org.id, status=answer.status_code)
        return seen

    return probe


def handover_probe(settings: Settings, *, secret: str) -> Probe | None:
    """The probe through Traefik when ``ORGPLANE_PROXY_URL`` and a base domain are set."""
    proxy_url, base_domain = settings.routing.proxy_url, settings.provisioning.base_domain
    if not proxy_url or not base_domain:
        return None
    return traefik_probe(
        secret=secret, proxy_url=proxy_url, host_of=lambda org: subdomain_of(org.slug, base_domain)
    )
