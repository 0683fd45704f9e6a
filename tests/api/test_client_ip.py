"""The real client IP: ``X-Forwarded-For`` is believed only from ``ORGPLANE_TRUSTED_PROXIES``.

Audit events and login throttling (``tests/api/test_login_throttle.py``) use it. The app runs
behind ``httpx.ASGITransport``, whose ``client=`` sets the peer address.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from sqlmodel import select

from control_plane.app import create_app
from control_plane.client_ip import real_client_ip
from control_plane.db.models import AuditEvent
from control_plane.settings import SecuritySettings

pytestmark = pytest.mark.parametrize("db_backend", ["sqlite"])

TRAEFIK = ("172.20.0.0/16",)


def test_a_forged_header_from_an_untrusted_peer_is_ignored(db_backend: str) -> None:
    assert real_client_ip("203.0.113.7", ["1.2.3.4"], TRAEFIK) == "203.0.113.7"
    assert real_client_ip("203.0.113.7", ["1.2.3.4"], ()) == "203.0.113.7"


def test_a_trusted_peer_gives_the_rightmost_untrusted_address(db_backend: str) -> None:
    # The client wrote "1.2.3.4" itself; Traefik appended the address it saw.
    assert real_client_ip("172.20.0.5", ["1.2.3.4, 198.51.100.2"], TRAEFIK) == "198.51.100.2"
    # Two trusted hops, and the header split over two lines.
    assert real_client_ip("172.20.0.5", ["198.51.100.2", "172.20.0.9"], TRAEFIK) == "198.51.100.2"
    # Ports and IPv6 brackets are tolerated.
    assert real_client_ip("172.20.0.5", ["[2001:db8::1]:443"], TRAEFIK) == "2001:db8::1"
    assert real_client_ip("172.20.0.5", ["198.51.100.2:5555"], TRAEFIK) == "198.51.100.2"
    # Nothing but trusted hops, or no header: the leftmost trusted address, or the peer.
    assert real_client_ip("172.20.0.5", ["172.20.0.9"], TRAEFIK) == "172.20.0.9"
    assert real_client_ip("172.20.0.5", [], TRAEFIK) == "172.20.0.5"
    # A malformed entry stops the walk: nothing left of it is believed.
    assert real_client_ip("172.20.0.5", ["1.2.3.4, bogus, 172.20.0.9"], TRAEFIK) == "172.20.0.9"


def test_trusted_proxies_must_be_networks(db_backend: str) -> None:
    assert SecuritySettings(trusted_proxies=["10.0.0.0/8", "::1"]).trusted_proxies
    with pytest.raises(ValidationError, match="not-a-network"):
        SecuritySettings(trusted_proxies=["not-a-network"])


async def test_audit_events_carry_the_real_client_ip(make_settings: Any, db_backend: str) -> None:
    """Failed on the old code: the audit event of a login through the proxy had the proxy's
    address (10.1.2.3), not the client's."""
    app = create_app(make_settings(ORGPLANE_TRUSTED_PROXIES='["10.0.0.0/8"]'))
    body = {"email": "nobody@example.com", "password": "not the password"}
    async with app.lifespan():
        for peer, forwarded in (("10.1.2.3", "198.51.100.2"), ("203.0.113.9", "198.51.100.3")):
            transport = httpx.ASGITransport(app=app, client=(peer, 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
                answer = await c.post(
                    "/api/v1/auth/login", json=body, headers={"X-Forwarded-For": forwarded}
                )
                assert answer.status_code == 401
        async with app.state.runtime.sessions() as db:
            rows = (
                await db.exec(select(AuditEvent).where(AuditEvent.action == "auth.login"))
            ).all()
    assert sorted(r.ip for r in rows) == ["198.51.100.2", "203.0.113.9"]
