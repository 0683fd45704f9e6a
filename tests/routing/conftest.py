"""Routing fixtures: a real DNS server on 127.0.0.1 and settings that use it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from dnslib.server import DNSLogger, DNSServer

from control_plane.settings import Settings
from tests.routing.helpers import BASE_DOMAIN, ROUTING_TOKEN, ZoneResolver


@pytest.fixture
def dns_zone() -> Iterator[tuple[ZoneResolver, int]]:
    """A DNS server on a free UDP port of 127.0.0.1: (its zone, its port)."""
    zone = ZoneResolver()
    quiet = DNSLogger(log="-recv,-send,-request,-reply,-truncated,-error,-data", prefix=False)
    server = DNSServer(zone, address="127.0.0.1", port=0, logger=quiet)
    server.start_thread()
    try:
        yield zone, server.server.server_address[1]
    finally:
        server.stop()
        server.server.server_close()


@pytest.fixture
def extra_settings() -> dict[str, str]:
    """More ``ORGPLANE_*`` settings for a module's tests (it overrides this fixture)."""
    return {}


@pytest.fixture
def settings(
    make_settings: Any, dns_zone: tuple[ZoneResolver, int], extra_settings: dict[str, str]
) -> Settings:
    """Test settings with a base domain, a routing token and the test's DNS server."""
    result: Settings = make_settings(
        ORGPLANE_BASE_DOMAIN=BASE_DOMAIN,
        ORGPLANE_ROUTING_TOKEN=ROUTING_TOKEN,
        ORGPLANE_DNS_RESOLVER=f"127.0.0.1:{dns_zone[1]}",
        ORGPLANE_ROUTING_FALLBACK_URL="http://control-plane.internal:8080",
        ORGPLANE_ENTRYPOINTS="web, websecure",
        **extra_settings,
    )
    return result
