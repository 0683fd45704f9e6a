"""Embedded mode's edge: the control plane's own port also answers the orgs' hosts.

In production Traefik routes ``{slug}.{base_domain}`` to the org's instance
(:mod:`control_plane.routing.traefik`). ``orgplane up`` runs no Traefik, so with
``ORGPLANE_EMBEDDED_ROUTING`` (which ``up`` turns on, and production mode refuses) this pure-ASGI
wrapper makes the same decisions for a request whose Host is ``{label}.{base_domain}[:port]``:

* an org whose instance serves (running, meant to run, not suspended, with an endpoint): the
  request is proxied to the instance, Host kept (the instance checks it), the body and the answer
  streamed with httpx, ``X-Forwarded-*`` set by the proxy and never taken from the client;
  WebSockets are relayed frame by frame (:mod:`control_plane.routing.embedded_ws`);
* a hibernated or waking org: the request goes to the wake endpoint (path under
  :data:`~provisioners.traefik.WAKE_PREFIX`, as Traefik's ``addPrefix`` does), which starts it;
* any other org, and a host no live org owns: the request goes to ``/org-unavailable`` (as
  Traefik's fallback route does): 503 with the org's page, or 404 ``unknown_host``.

An instance that does not answer gives 502 ``instance_unreachable`` (Traefik's 502). Every other
Host (the control plane's own, ``127.0.0.1``, custom domains) reaches the control plane as before.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog
from litestar import Litestar
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

from control_plane.db.models import Instance, utcnow
from control_plane.routing.embedded_ws import relay_websocket
from control_plane.routing.forwarding import HOP_BY_HOP, forwarded_headers, header, target_path
from control_plane.routing.hostnames import InvalidHostname, canonical_hostname
from control_plane.routing.traefik import org_by_host, serves_instance
from control_plane.routing.wake import answers_for
from control_plane.settings import Settings
from control_plane.store_errors import UNAVAILABLE_RETRY_AFTER, store_outage
from orgplane_wire.problems import send_problem
from provisioners.traefik import UNAVAILABLE_PATH, WAKE_PREFIX

log = structlog.get_logger("orgplane.routing.embedded")

TIMEOUT = httpx.Timeout(connect=5.0, read=300.0, write=60.0, pool=10.0)


class EmbeddedRouter:
    """Pure ASGI: route org hosts as the edge would (see the module docstring)."""

    def __init__(self, app: ASGIApp, *, litestar: Litestar, settings: Settings) -> None:
        self.app, self.litestar = app, litestar
        self.base = canonical_hostname(settings.provisioning.base_domain)
        own = urlsplit(settings.server.base_url).hostname or ""
        self.own_host = own.lower()
        self._client: httpx.AsyncClient | None = None

    def org_host(self, scope: Scope) -> str:
        """The Host header when it names ``{label}.{base_domain}``, else ''."""
        host = header(scope, b"host")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        try:
            hostname = canonical_hostname(name)
        except InvalidHostname:
            return ""
        label, _, rest = hostname.partition(".")
        if rest != self.base or not label or hostname == self.own_host:
            return ""
        return host

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        host = self.org_host(scope) if scope["type"] in _SCOPES else ""
        if not host:
            await self.app(scope, receive, send)
            return
        try:
            endpoint, wake = await self._decide(host)
        except Exception as exc:
            if store_outage(exc) != "database":
                raise
            await self._database_unavailable(scope, send, host=host, error=exc)
            return
        if endpoint:
            if scope["type"] == ScopeType.WEBSOCKET:
                await relay_websocket(scope, receive, send, endpoint=endpoint, host=host)
            else:
                await self._proxy(scope, receive, send, endpoint=endpoint, host=host)
            return
        # As Traefik's routes do: the wake endpoint (prefix added) or the unavailable page.
        path = WAKE_PREFIX + scope["path"] if wake else UNAVAILABLE_PATH
        raw = (WAKE_PREFIX.encode() + (scope.get("raw_path") or b"")) if wake else path.encode()
        inner: Any = dict(scope, path=path, raw_path=raw)
        if not wake:
            inner["query_string"] = b""
        await self.app(inner, receive, send)

    async def _database_unavailable(
        self, scope: Scope, send: Send, *, host: str, error: Exception
    ) -> None:
        """The org cannot be looked up: 503, as the API answers a database outage."""
        log.warning(
            "embedded routing: database unavailable", host=host, exc_type=type(error).__name__
        )
        if scope["type"] == ScopeType.WEBSOCKET:
            await send({"type": "websocket.close", "code": 1013, "reason": "try again later"})
            return
        await send_problem(
            send,
            status=503,
            code="database_unavailable",
            title="Service unavailable",
            detail="The database cannot be reached right now. Try again shortly.",
            headers=((b"retry-after", str(UNAVAILABLE_RETRY_AFTER).encode()),),
        )

    async def _decide(self, host: str) -> tuple[str, bool]:
        """(the instance's URL when it serves, else ''; whether the wake endpoint answers)."""
        runtime = self.litestar.state.runtime
        async with runtime.sessions() as db:
            org = await org_by_host(db, host=host, base_domain=self.base)
            if org is None:
                return "", False
            instance = await db.get(Instance, org.id)
            endpoint = instance.endpoint if instance else ""
            if serves_instance(
                phase=org.phase,
                desired_state=org.desired_state,
                suspended=org.suspended,
                endpoint=endpoint,
            ):
                return (endpoint if "://" in endpoint else f"http://{endpoint}"), False
            return "", answers_for(org, now=utcnow())

    def client(self) -> httpx.AsyncClient:
        """One connection pool for every proxied request (closed with the app)."""
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=TIMEOUT, trust_env=False)
        return self._client

    async def aclose(self) -> None:
        """Close the connection pool."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _proxy(
        self, scope: Scope, receive: Receive, send: Send, *, endpoint: str, host: str
    ) -> None:
        headers = forwarded_headers(scope, host=host)
        has_body = header(scope, b"content-length") not in ("", "0") or bool(
            header(scope, b"transfer-encoding")
        )
        method: str = scope["method"]  # type: ignore[typeddict-item]  # an HTTP scope here
        request = self.client().build_request(
            method,
            endpoint.rstrip("/") + target_path(scope),
            headers=[(b"host", host.encode("latin-1")), *headers],
            content=_body(receive) if has_body else None,
        )
        try:
            answer = await self.client().send(request, stream=True)
        except httpx.HTTPError as exc:
            log.warning("instance unreachable", host=host[:255], error=type(exc).__name__)
            await send_problem(
                send,
                status=502,
                code="instance_unreachable",
                title="Bad gateway",
                detail="The org's instance did not answer.",
            )
            return
        try:
            start: Any = {
                "type": "http.response.start",
                "status": answer.status_code,
                "headers": [(k, v) for k, v in answer.headers.raw if k.lower() not in HOP_BY_HOP],
            }
            await send(start)
            async for chunk in answer.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except httpx.HTTPError as exc:  # the instance went away mid-answer: end it
            log.warning("instance answer cut", host=host[:255], error=type(exc).__name__)
        finally:
            await answer.aclose()


_SCOPES = (ScopeType.HTTP, ScopeType.WEBSOCKET)


async def _body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message: Any = await receive()
        if message["type"] == "http.disconnect":
            return
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return
