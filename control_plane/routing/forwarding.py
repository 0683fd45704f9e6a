"""What a proxy of the embedded edge forwards: end-to-end headers, its own ``X-Forwarded-*``,
and the path and query as the client sent them."""

from __future__ import annotations

from litestar.types import Scope

#: Headers of one connection (RFC 9110 §7.6.1), never forwarded; ``host`` is set explicitly.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"host",
    }
)
#: Forwarding headers the proxy sets itself; a client's own are dropped (as Traefik does).
FORWARDED = frozenset(
    {b"x-forwarded-for", b"x-forwarded-host", b"x-forwarded-proto", b"x-real-ip", b"forwarded"}
)


def header(scope: Scope, name: bytes) -> str:
    """The first value of a request header, or ''."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return ""


def forwarded_headers(scope: Scope, *, host: str) -> list[tuple[bytes, bytes]]:
    """The request's end-to-end headers for the instance, with the proxy's ``X-Forwarded-*``."""
    kept = [
        (bytes(k), bytes(v))
        for k, v in scope.get("headers", ())
        if k not in HOP_BY_HOP and k not in FORWARDED
    ]
    client = scope.get("client") or ("", 0)
    scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"
    kept += [
        (b"x-forwarded-for", str(client[0]).encode()),
        (b"x-forwarded-host", host.encode("latin-1")),
        (b"x-forwarded-proto", scheme.encode()),
    ]
    return kept


def target_path(scope: Scope) -> str:
    """The path and query as the client sent them (escaping kept)."""
    raw: bytes = scope.get("raw_path") or scope["path"].encode()
    path = raw.split(b"?", 1)[0].decode("latin-1")
    query: bytes = scope.get("query_string", b"")
    return path + (f"?{query.decode('latin-1')}" if query else "")
