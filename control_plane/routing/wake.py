"""The wake endpoint: the first request to a hibernated org starts it.

Traefik sends a hibernated org's hosts here (router ``<org>-wake``, middleware ``addPrefix``
:data:`~provisioners.traefik.WAKE_PREFIX`, Host kept). The org is found from the Host header
through the hostname table (a Host no org owns, or an org that is neither hibernated nor waking,
is refused 404 ``unknown_org``, never defaulted); its ``hibernated_at`` is cleared with one
conditional UPDATE, so concurrent first requests start it once; the reconciler is woken. Then:

* a browser (GET/HEAD accepting ``text/html``) gets 503 with ``Retry-After: 2`` and a small page
  that reloads itself, until the org's own route takes over;
* any other request is held, polling the org's phase, for at most
  ``ORGPLANE_WAKE_HOLD_TIMEOUT`` seconds: once the org runs it is answered 307 to the original
  URL (same host, path and query; 307 keeps the method and body), else 503 ``org_starting``
  with Retry-After. At most :data:`MAX_HELD` requests are held per process; more are answered
  503 at once. No authentication: the request is not served here, only retried.

A hibernating org's handover probe (``routing/handover.py``: the reconciler checking, through
Traefik, that the org's hosts come here before it stops the instance) is acknowledged and wakes
nothing.

A request that arrives while the org already runs means the proxy has not yet picked up the
org's own route: it is redirected after :data:`LAG_PAUSE`, so a client following redirects
retries at a bounded pace instead of spinning.
"""

from __future__ import annotations

import asyncio
import contextlib
from html import escape
from typing import Any

from litestar import Request, Response, route
from litestar.enums import HttpMethod
from sqlmodel import select

from control_plane.client_ip import client_ip
from control_plane.db.models import Org, utcnow
from control_plane.db.phases import OrgPhase
from control_plane.deps import RuntimeDep
from control_plane.routing import handover
from control_plane.routing.hibernation import WAKE_WINDOW, wake, wake_routed
from control_plane.routing.hostnames import canonical_hostname
from control_plane.routing.traefik import org_by_host
from control_plane.runtime import Runtime, resolve_secret
from orgplane_wire.problems import NotFound, ProblemError
from provisioners.traefik import WAKE_PREFIX

#: Requests held at once per process; beyond it, 503 at once (no unbounded waits).
MAX_HELD = 100
POLL_SECONDS = 0.5
LAG_PAUSE = 1.0
BROWSER_RETRY_AFTER = 2


class OrgStarting(ProblemError):
    """503: the org is waking and does not serve yet; retry after Retry-After."""

    status, code, title = 503, "org_starting", "The org is starting"


class HeldRequests:
    """A count of requests held by this process, refused beyond ``limit``."""

    def __init__(self, limit: int) -> None:
        self.limit, self.held = limit, 0

    def try_hold(self) -> bool:
        """Take a place if one is free."""
        if self.held >= self.limit:
            return False
        self.held += 1
        return True

    def release(self) -> None:
        """Give the place back."""
        self.held -= 1


def answers_for(org: Org, *, now: Any) -> bool:
    """Whether the wake endpoint serves ``org``: hibernated, waking, or woken so recently that
    the proxy may still route it here."""
    if wake_routed(org, now=now):
        return True
    woken = org.woken_at
    return org.phase == OrgPhase.RUNNING and woken is not None and now - woken <= WAKE_WINDOW


def split_host(host: str) -> tuple[str, str]:
    """A Host header's canonical hostname and its port (empty when none or not digits);
    400 ``invalid_hostname`` when it is not a hostname."""
    name, colon, port = host.rpartition(":")
    if not colon:
        name, port = host, ""
    return canonical_hostname(name), port if port.isdigit() else ""


def original_url(request: Request[Any, Any, Any], *, host: str) -> str:
    """The URL the client asked for: the org's host (checked, so Location never points
    elsewhere), the path without the wake prefix, the query."""
    hostname, port = split_host(host)
    authority = f"{hostname}:{port}" if port else hostname
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    scheme = forwarded if forwarded in ("http", "https") else request.url.scheme
    # raw_path keeps the client's escaping; some servers leave the query on it.
    raw: bytes = request.scope.get("raw_path") or request.url.path.encode()
    path = raw.split(b"?", 1)[0].decode("latin-1").removeprefix(WAKE_PREFIX) or "/"
    query = request.url.query
    return f"{scheme}://{authority}{path}" + (f"?{query}" if query else "")


def wants_page(request: Request[Any, Any, Any]) -> bool:
    """A browser navigation: GET or HEAD accepting HTML (other methods are held, not reloaded)."""
    accept = request.headers.get("accept", "")
    return request.method in ("GET", "HEAD") and "text/html" in accept


def starting_page(name: str) -> Response[str]:
    """503 with a page that reloads itself every :data:`BROWSER_RETRY_AFTER` seconds."""
    shown = escape(name)
    body = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<meta http-equiv=refresh content={BROWSER_RETRY_AFTER}>"
        f"<title>{shown} is starting</title>"
        "<meta name=viewport content='width=device-width,initial-scale=1'></head>"
        "<body style='font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto'>"
        f"<h1>{shown} is starting</h1><p>It was asleep after a quiet spell and is waking up. "
        "This page reloads by itself.</p></body></html>"
    )
    return Response(
        body,
        status_code=503,
        media_type="text/html",
        headers={"Retry-After": str(BROWSER_RETRY_AFTER), "Cache-Control": "no-store"},
    )


async def wait_until_running(runtime: Runtime, *, org_id: str, seconds: float) -> bool:
    """Poll the org's phase until ``running`` (True) or ``seconds`` pass (False)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            while True:
                async with runtime.sessions() as db:
                    query = select(Org.phase).where(Org.id == org_id)
                    if (await db.exec(query)).first() == OrgPhase.RUNNING:
                        return True
                await asyncio.sleep(POLL_SECONDS)
    return False


def _held(request: Request[Any, Any, Any]) -> HeldRequests:
    state = request.app.state
    if getattr(state, "wake_holds", None) is None:
        state.wake_holds = HeldRequests(MAX_HELD)
    holds: HeldRequests = state.wake_holds
    return holds


@route(
    [WAKE_PREFIX, f"{WAKE_PREFIX}/{{rest:path}}"],
    http_method=[m for m in HttpMethod if m is not HttpMethod.OPTIONS],
    include_in_schema=False,
)
async def wake_org(request: Request[Any, Any, Any], runtime: RuntimeDep) -> Response[Any]:
    """Wake the hibernated org the Host names; see the module docstring."""
    settings = runtime.settings
    host = request.headers.get("host", "")
    async with runtime.sessions() as db:  # short: no connection is kept while holding
        org = await org_by_host(db, host=host, base_domain=settings.provisioning.base_domain)
        if org is None or not answers_for(org, now=utcnow()):
            raise NotFound("No hibernated org is reached at this address.", code="unknown_org")
        probed = request.headers.get(handover.PROBE_HEADER)
        if probed is not None and org.phase == OrgPhase.STOPPING:
            secret = resolve_secret(settings)
            if handover.is_probe(secret, org, probed):
                ack = {handover.ACK_HEADER: handover.probe_ack(secret, probed)}
                return Response(b"", status_code=204, headers=ack)
        org_id, name, was_running = org.id, org.name or org.slug, org.phase == OrgPhase.RUNNING
        if org.hibernated_at is not None:
            by = f"a request to {split_host(host)[0]}"
            if await wake(db, org_id=org_id, by=by, ip=client_ip(request)):
                reconciler = getattr(request.app.state, "reconciler", None)
                if reconciler is not None:
                    reconciler.wake()
    if wants_page(request):
        return starting_page(name)
    holds = _held(request)
    if not holds.try_hold():
        raise OrgStarting("The org is starting; retry shortly.", headers=_retry())
    try:
        if was_running:
            await asyncio.sleep(LAG_PAUSE)
            running = True
        else:
            timeout = settings.routing.wake_hold_timeout
            running = await wait_until_running(runtime, org_id=org_id, seconds=timeout)
    finally:
        holds.release()
    if not running:
        raise OrgStarting("The org is starting; retry shortly.", headers=_retry())
    location = original_url(request, host=host)
    return Response(b"", status_code=307, headers={"Location": location})


def _retry() -> dict[str, str]:
    return {"Retry-After": str(BROWSER_RETRY_AFTER)}


ROUTES: list[Any] = [wake_org]
