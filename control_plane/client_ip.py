"""The real client IP of a request: the peer, or ``X-Forwarded-For`` behind a trusted proxy.

A proxy appends the address it got the request from to ``X-Forwarded-For``, so the header is
only as trustworthy as the hop that wrote each entry. The header is read only when the peer is
one of ``ORGPLANE_TRUSTED_PROXIES``; then the entries are read from the right, skipping
addresses of trusted proxies, and the first other address is the client. Whatever a client
writes itself ends up to the left of that address and is never used. A malformed entry stops
the walk (the last trusted hop is answered: nothing to its left can be believed).
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Any

from litestar.connection import ASGIConnection

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@lru_cache(maxsize=8)
def _networks(cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def _address(text: str) -> Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def real_client_ip(peer: str, forwarded_for: list[str], trusted: tuple[str, ...]) -> str:
    """The client IP given the peer address, the ``X-Forwarded-For`` values and the trusted
    proxy networks."""
    networks = _networks(trusted)
    address = _address(peer)

    def is_trusted(a: Address) -> bool:
        return any(a in n for n in networks)

    if address is None or not is_trusted(address):
        return peer
    hops = [h for value in forwarded_for for h in value.split(",") if h.strip()]
    for hop in reversed(hops):
        found = _address(hop)
        if found is None:
            break
        address = found
        if not is_trusted(found):
            break
    return str(address)


def client_ip(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """The real client IP of ``connection`` under the app's ``trusted_proxies``."""
    peer = connection.client.host if connection.client else "unknown"
    trusted = connection.app.state.runtime.settings.security.trusted_proxies
    if not trusted:
        return peer
    return real_client_ip(peer, connection.headers.getall("x-forwarded-for", []), tuple(trusted))
