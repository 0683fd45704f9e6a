"""The ASGI middleware that makes an app answer only as the contract allows.

:class:`OrgGuard` wraps any ASGI app (FastAPI, Starlette, Django, Quart, a bare callable):

* A ``Host`` header that is not a host with an optional port (0-65535), or several of them, is
  refused first, probes included: 400 ``invalid_host`` (RFC 9112 §3.2).
* ``/healthz`` and ``/readyz`` are passed to the app; when it answers them 404 (it has no such
  route) the guard answers them itself: ``/healthz`` 200, ``/readyz`` 200 when the ``ready``
  check passes, 503 ``not_ready`` otherwise. Probes skip the Host and token checks
  (orchestrators probe by address) and reveal no org data.
* Every other request whose ``Host`` (port ignored, case-insensitive) is not
  one of ``allowed_hosts`` is refused: 421 ``misdirected_request`` (a WebSocket: closed 1008).
* Then a valid org token (``Authorization: Bearer``; a WebSocket may use the ``access_token``
  query parameter) is required: anything else is 401 ``invalid_token`` with
  ``WWW-Authenticate`` (a WebSocket: closed 4401); so is a token the org's revocation list
  names, when one is followed (``revoked``). The verified claims are put in
  ``scope["state"]["claims"]``, which Starlette and FastAPI show as ``request.state.claims``.

Refusals are RFC 9457 problem+json documents with a stable ``code``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from typing import Any
from urllib.parse import parse_qs

from orgplane_sdk.contract import PROBE_PATHS
from orgplane_sdk.verifier import InvalidToken, TokenVerifier

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Ready = Callable[[], Awaitable[bool]]
#: Whether verified claims name a revoked token (``orgplane_sdk.redis.Revocations.refuses``).
Revoked = Callable[[Mapping[str, Any]], bool]

log = logging.getLogger("orgplane_sdk.middleware")
PROBLEM_TYPE_BASE = "https://orgplane.dev/problems/"
WS_CLOSE_POLICY = 1008
WS_CLOSE_UNAUTHORIZED = 4401
#: RFC 3986's IP-literal or reg-name, then an optional port.
_HOST = re.compile(
    r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~%!$&'()*+,;=]*)(?::(?P<port>[0-9]*))?", re.ASCII
)


async def _always_ready() -> bool:
    return True


def host_is_valid(raw: str) -> bool:
    """Whether ``raw`` is ``uri-host [":" port]`` (RFC 9110 §7.2) with a port up to 65535."""
    match = _HOST.fullmatch(raw)
    if match is None:
        return False
    digits = (match.group("port") or "").lstrip("0")
    return len(digits) <= 5 and int(digits or "0") <= 65535


def normalize_host(value: str) -> str:
    """A Host header or hostname as compared: lowercase, no port, no trailing dot."""
    host = value.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def problem(status: int, code: str, title: str, detail: str) -> bytes:
    """An RFC 9457 problem document."""
    body = {"type": PROBLEM_TYPE_BASE + code, "title": title, "status": status}
    body.update(detail=detail, code=code)
    return json.dumps(body).encode()


async def respond(
    send: Send,
    status: int,
    body: bytes,
    *,
    content_type: bytes = b"application/problem+json",
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    """Send a whole HTTP response."""
    head = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": [*head, *headers]})
    await send({"type": "http.response.body", "body": body})


def _headers(scope: Scope, name: bytes) -> list[str]:
    return [bytes(v).decode("latin-1") for k, v in scope.get("headers", ()) if k == name]


def bearer_token(scope: Scope) -> str:
    """The Bearer token of the request ("" when none)."""
    for value in _headers(scope, b"authorization")[:1]:
        scheme, _, token = value.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    if scope["type"] == "websocket":
        query = parse_qs(bytes(scope.get("query_string", b"")).decode("latin-1"))
        return query.get("access_token", [""])[0]
    return ""


class OrgGuard:
    """Host check, org-token check and probes in front of ``app`` (see the module doc)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        verifier: TokenVerifier,
        allowed_hosts: Iterable[str],
        ready: Ready = _always_ready,
        revoked: Revoked | None = None,
    ) -> None:
        self.app, self.verifier, self.ready, self.revoked = app, verifier, ready, revoked
        self.allowed_hosts = frozenset(normalize_host(h) for h in allowed_hosts if h.strip())
        #: Requests let through to the app since start (reported in heartbeats).
        self.requests = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        hosts = _headers(scope, b"host")
        if len(hosts) > 1 or not all(host_is_valid(h) for h in hosts):
            await self._refuse(
                scope, send, 400, "invalid_host", "Invalid request",
                "The Host header is not a valid host and port.", ws_code=WS_CLOSE_POLICY,
            )  # fmt: skip
            return
        if scope["path"] in PROBE_PATHS and scope["type"] == "http":
            await self._probe(scope, receive, send)
            return
        if not hosts or normalize_host(hosts[0]) not in self.allowed_hosts:
            log.warning("misdirected request refused: host %r", (hosts or [""])[0][:255])
            await self._refuse(
                scope, send, 421, "misdirected_request", "Misdirected request",
                "This server does not answer for that host.", ws_code=WS_CLOSE_POLICY,
            )  # fmt: skip
            return
        token = bearer_token(scope)
        try:
            if not token:
                raise InvalidToken("no token")
            claims = await self.verifier.verify(token)
            if self.revoked is not None and self.revoked(claims):
                raise InvalidToken("revoked")
        except InvalidToken as exc:
            log.info("token refused: %s", exc)
            challenge = b'Bearer error="invalid_token"' if token else b"Bearer"
            await self._refuse(
                scope, send, 401, "invalid_token", "Authentication required",
                "Send a valid Bearer org token for this org.", ws_code=WS_CLOSE_UNAUTHORIZED,
                headers=[(b"www-authenticate", challenge)],
            )  # fmt: skip
            return
        scope.setdefault("state", {})["claims"] = claims
        self.requests += 1
        await self.app(scope, receive, send)

    async def _refuse(
        self,
        scope: Scope,
        send: Send,
        status: int,
        code: str,
        title: str,
        detail: str,
        *,
        ws_code: int,
        headers: Iterable[tuple[bytes, bytes]] = (),
    ) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": ws_code, "reason": code})
            return
        await respond(send, status, problem(status, code, title, detail), headers=headers)

    async def _is_ready(self) -> bool:
        try:
            return bool(await self.ready())
        except Exception:  # a failing check means not ready, never a 500
            log.warning("readiness check failed", exc_info=True)
            return False

    async def _probe(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The app's own probe when it has one, else the guard's."""
        held: list[Message] = []

        async def hold_404(message: Message) -> None:
            if held or (message["type"] == "http.response.start" and message["status"] == 404):
                held.append(message)
                return
            await send(message)

        await self.app(scope, receive, hold_404)
        if not held:
            return
        if scope["path"] == "/healthz":
            await respond(send, 200, b'{"status":"ok"}', content_type=b"application/json")
        elif await self._is_ready():
            await respond(send, 200, b'{"status":"ready"}', content_type=b"application/json")
        else:
            body = problem(503, "not_ready", "Service unavailable", "Not ready.")
            await respond(send, 503, body)
