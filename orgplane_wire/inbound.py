"""What every request must be before a handler sees it, for the instance and the control plane.

* :class:`HostSyntaxCheck` wraps the whole app (before routing): a ``Host`` header that is not
  ``uri-host [":" port]`` (RFC 9110 §7.2), or several of them, is answered 400
  ``invalid_host`` (RFC 9112 §3.2). Without it, Litestar raised while building ``request.url``
  (``127.0.0.1:abc``, ``:99999``), inside the error handler too, and the client got a bare 500.
* :class:`BoundedJSONRequest` is the request class of both apps: a JSON body nested deeper than
  :data:`MAX_JSON_DEPTH`, or not UTF-8, is refused as undecodable (400 ``malformed_body``)
  instead of reaching msgspec, which raised ``RecursionError`` or ``UnicodeDecodeError`` (500).

Both processes speak this; it lives here because the instance never imports the control plane
(the control plane already imports the instance's wire contract).
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Request
from litestar.enums import ScopeType
from litestar.exceptions import SerializationException
from litestar.types import ASGIApp, Receive, Scope, Send

from orgplane_wire.problems import PROBLEM_JSON, problem_body

#: Deepest nesting of arrays and objects a JSON body may have. Our bodies nest three levels at
#: most; msgspec's own limit is the interpreter's recursion limit, which it turns into a
#: ``RecursionError`` rather than a decode error.
MAX_JSON_DEPTH = 32

#: RFC 9110 §7.2 ``Host = uri-host [ ":" port ]`` with RFC 3986's IP-literal and reg-name.
_HOST = re.compile(
    r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~%!$&'()*+,;=]*)(?::(?P<port>[0-9]*))?", re.ASCII
)
#: Brackets, and whole strings (so brackets inside strings are skipped). Possessive, so a long
#: string is one match without backtracking.
_STRUCTURE = re.compile(rb'[\[\]{}]|"(?:[^"\\]++|\\.)*+"', re.DOTALL)


def host_is_valid(raw: str) -> bool:
    """True when ``raw`` is a syntactically valid Host value with a port in 0-65535."""
    match = _HOST.fullmatch(raw)
    if match is None:
        return False
    # Length first: int() refuses strings of over 4,300 digits (ValueError, a 500 here).
    digits = (match.group("port") or "").lstrip("0")
    return len(digits) <= 5 and int(digits or "0") <= 65535


def json_depth_exceeds(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when ``body`` opens more than ``limit`` arrays or objects inside one another.

    A scan, not a parse: msgspec has no depth option and fails deep input only by recursion,
    so the depth is measured before it decodes. Bodies with few brackets skip the scan.
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    depth = 0
    for token in _STRUCTURE.finditer(body):
        char = token.group()[:1]
        if char in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        elif char in (b"]", b"}"):
            depth -= 1
    return False


class BoundedJSONRequest(Request[Any, Any, Any]):
    """A Litestar request whose JSON body is refused, not crashed on, when too deep or not
    UTF-8: both raise :class:`SerializationException`, which Litestar answers 400."""

    async def json(self) -> Any:
        """The decoded JSON body (see the class docstring for what is refused)."""
        body = await self.body()
        if json_depth_exceeds(body):
            raise SerializationException(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
        try:
            return await super().json()
        except (UnicodeDecodeError, msgspec.DecodeError) as exc:
            raise SerializationException("JSON body is not valid UTF-8 JSON") from exc


def _hosts(scope: Scope) -> list[str]:
    return [bytes(v).decode("latin-1") for k, v in scope.get("headers", ()) if k == b"host"]


class HostSyntaxCheck:
    """Pure ASGI, outermost: 400 ``invalid_host`` for a malformed or repeated Host header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in (ScopeType.HTTP, ScopeType.WEBSOCKET):
            await self.app(scope, receive, send)
            return
        hosts = _hosts(scope)
        if len(hosts) <= 1 and all(host_is_valid(h) for h in hosts):
            await self.app(scope, receive, send)
            return
        prefix = "websocket.http." if scope["type"] == ScopeType.WEBSOCKET else "http."
        extensions = scope.get("extensions") or {}
        if prefix == "websocket.http." and "websocket.http.response" not in extensions:
            await send({"type": "websocket.close", "code": 1008, "reason": "invalid host"})
            return
        body = problem_body(
            status=400,
            code="invalid_host",
            title="Invalid request",
            detail="The Host header is not a valid host and port.",
        )
        headers = [
            (b"content-type", PROBLEM_JSON.encode()),
            (b"content-length", str(len(body)).encode()),
        ]
        start: Any = {"type": prefix + "response.start", "status": 400, "headers": headers}
        await send(start)
        end: Any = {"type": prefix + "response.body", "body": body}
        await send(end)
