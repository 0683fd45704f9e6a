"""Where a webhook may be sent: an absolute http(s) URL whose host resolves only to public
addresses, unless ``ORGPLANE_WEBHOOK_ALLOW_PRIVATE`` is on. Checked when an endpoint is
registered (400 ``invalid_webhook_url`` / ``webhook_destination_refused``) and again at every
delivery, which then connects to the address it checked (a name that resolves elsewhere a
moment later cannot redirect the request), and follows no redirect.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from orgplane_wire.problems import BadRequest

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class DestinationRefused(BadRequest):
    """The destination is not a public address (SSRF guard)."""

    code = "webhook_destination_refused"


@dataclass(frozen=True)
class Destination:
    """A checked URL and the address to connect to."""

    url: str
    host: str
    address: str


def check_url(url: str) -> tuple[str, str, int]:
    """The scheme, host and port of an absolute http(s) URL without credentials, or 400
    ``invalid_webhook_url``."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        parts, port = None, 0
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.username is not None
        or parts.password is not None
        or any(c.isspace() for c in url)
    ):
        raise BadRequest(
            "url must be an absolute http(s) URL without credentials.",
            code="invalid_webhook_url",
            field="url",
        )
    return parts.scheme, parts.hostname, port


def is_public(address: Address) -> bool:
    """Whether ``address`` is globally routable (not private, loopback, link-local, ...)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


async def resolve(url: str, *, allow_private: bool) -> Destination:
    """The URL checked and resolved; :class:`DestinationRefused` when any address it
    resolves to is not public (and private ones are not allowed) or it does not resolve."""
    _, host, port = check_url(url)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise DestinationRefused(f"The host {host!r} does not resolve.", field="url") from exc
    addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    if not addresses:
        raise DestinationRefused(f"The host {host!r} does not resolve.", field="url")
    if not allow_private and not all(is_public(a) for a in addresses):
        raise DestinationRefused(
            "Webhooks are not sent to private, loopback or link-local addresses.", field="url"
        )
    return Destination(url=url, host=host, address=str(addresses[0]))
