"""Known devices: a sign-in from a device the account never used mails the account's owner.

A device is the user agent and the client's IP network (a /24 for IPv4, a /64 for IPv6), kept
per user as a hash with the readable parts beside it. One ``INSERT ... ON CONFLICT DO NOTHING``
per sign-in both remembers the device and says whether it is new; the first device an
account ever signs in from is remembered without a message.
"""

from __future__ import annotations

import hashlib
import ipaddress
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.db.models import User, UserDevice, new_id, utcnow
from control_plane.mail.outbox import enqueue
from control_plane.settings import Settings


def network_of(ip: str) -> str:
    """The network ``ip`` belongs to, as devices are told apart: /24 (IPv4) or /64 (IPv6)."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip[:64]
    prefix = 24 if address.version == 4 else 64
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


async def note_device(
    db: AsyncSession, settings: Settings, *, user: User, ip: str, user_agent: str
) -> bool:
    """Remember the device of this sign-in; True (and a message queued, when email is on) if
    the account had signed in before, but never from it. Does not commit."""
    agent, network = user_agent[:300], network_of(ip)
    fingerprint = hashlib.sha256(f"{agent}\n{network}".encode()).hexdigest()
    insert: Any = postgresql.insert if db.get_bind().dialect.name == "postgresql" else sqlite.insert
    result = await db.exec(
        insert(UserDevice)
        .values(
            id=new_id(),
            user_id=user.id,
            fingerprint=fingerprint,
            user_agent=agent,
            network=network,
            first_seen_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["user_id", "fingerprint"])
    )
    if result.rowcount != 1:
        return False  # known device
    others = select(UserDevice.id).where(
        col(UserDevice.user_id) == user.id, col(UserDevice.fingerprint) != fingerprint
    )
    if (await db.exec(others.limit(1))).first() is None:
        return False  # the account's first device
    if settings.mail.enabled:
        enqueue(
            db,
            settings,
            kind="new_device",
            to=user.email,
            email=user.email,
            at=utcnow().strftime("%Y-%m-%d %H:%M UTC"),
            user_agent=agent or "(not given)",
            network=network,
            reset_link=f"{settings.server.base_url}/ui/password/forgot",
        )
    return True
