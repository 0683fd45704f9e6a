"""The Redis clause: the instance works with an ACL user confined to ``org:{id}:*``.

The kit makes the org's user exactly as the control plane does
(:func:`control_plane.redis_acl.ensure_org_redis_user`), gives the instance its URL, and after
the run reads the server's ``ACL LOG``: every key or channel the instance tried outside its
namespace (or a command it may not run) is an entry there under its user name. The log is read,
never reset (the server may be shared); entries older than the run are ignored.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import Redis

from conformance_kit.fake_cp import FakeControlPlane
from conformance_kit.report import Report
from control_plane.redis_acl import delete_org_redis_user, ensure_org_redis_user, username_for
from orgplane_wire.contract import redis_namespace


class RedisNamespace:
    """The org's ACL user on the Redis at ``admin_url``, which the instance reaches at
    ``instance_host`` (``host`` or ``host:port``; default: where the admin URL points)."""

    def __init__(self, admin_url: str, *, instance_host: str = "") -> None:
        self.admin_url = admin_url
        self.instance_host = instance_host
        self.created = time.monotonic()

    async def _with_admin(self, action: Any) -> Any:
        admin = Redis.from_url(self.admin_url, socket_timeout=5)
        try:
            return await action(admin)
        finally:
            await admin.aclose()

    def create_user(self, org_id: str) -> str:
        """Create the org's user (a fresh password); returns the instance's Redis URL."""

        self.created = time.monotonic()

        async def create(admin: Redis) -> str:
            return await ensure_org_redis_user(admin, org_id=org_id)

        url: str = asyncio.run(self._with_admin(create))
        if not self.instance_host:
            return url
        parts = urlsplit(url)
        where = self.instance_host if ":" in self.instance_host else f"{self.instance_host}:6379"
        credentials = parts.netloc.rpartition("@")[0]
        return urlunsplit(parts._replace(netloc=f"{credentials}@{where}"))

    def check(self, report: Report, cp: FakeControlPlane, *, org_id: str) -> None:
        """``redis.namespace``: Redis is healthy for the instance and it touched nothing else."""
        user = username_for(org_id)

        async def inspect(admin: Redis) -> tuple[list[Any], int]:
            log = await admin.execute_command("ACL", "LOG", "128")  # type: ignore[no-untyped-call]
            # This run's refusals: its user's, logged since the user was made.
            age = time.monotonic() - self.created + 1
            ours = [
                entry
                for entry in log
                if _field(entry, "username") == user and float(_field(entry, "age-seconds")) <= age
            ]
            keys = 0
            async for _ in admin.scan_iter(match=f"{redis_namespace(org_id)}:*", count=500):
                keys += 1
            await delete_org_redis_user(admin, org_id=org_id)
            return ours, keys

        denied, keys = asyncio.run(self._with_admin(inspect))
        bodies = [b.body for b in cp.snapshot() if isinstance(b.body, dict)]
        redis_ok = bool(bodies) and all(body.get("redis_ok") is True for body in bodies[-3:])
        refused = sorted({f"{_field(e, 'reason')}:{_field(e, 'object')}" for e in denied})
        report.add(
            "redis.namespace",
            f"with a Redis user confined to {redis_namespace(org_id)}:*, the instance reports "
            "Redis healthy and touches nothing outside its namespace",
            redis_ok and not denied,
            f"heartbeats report redis_ok={redis_ok}; {keys} keys in the namespace; "
            f"{len(denied)} refusals in ACL LOG"
            + (f" ({', '.join(refused[:5])})" if refused else ""),
        )


def _field(entry: Any, name: str) -> str:
    """A field of an ``ACL LOG`` entry (a dict in RESP3, a flat list in RESP2)."""
    if isinstance(entry, dict):
        value = entry.get(name, entry.get(name.encode(), ""))
    else:
        pairs = dict(zip(entry[::2], entry[1::2], strict=False))
        value = pairs.get(name, pairs.get(name.encode(), ""))
    return value.decode() if isinstance(value, bytes) else str(value)
