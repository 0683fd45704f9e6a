"""The org's Redis, confined to its namespace (``pip install 'orgplane-instance-sdk[redis]'``).

The control plane gives each org a Redis ACL user allowed only keys and channels under
``org:<org_id>:``; :class:`OrgRedis` prefixes every name, so the app cannot forget to.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from orgplane_sdk.contract import redis_namespace


class OrgRedis:
    """A Redis client for the org's ACL user, and :meth:`key` to name things in its namespace."""

    def __init__(self, url: str, org_id: str, **options: Any) -> None:
        if not url:
            raise ValueError("this org has no Redis (ORGPLANE_REDIS_URL is empty)")
        options.setdefault("socket_connect_timeout", 2)
        options.setdefault("socket_timeout", 5)
        self.client: Redis = Redis.from_url(url, **options)
        self.namespace = redis_namespace(org_id)

    def key(self, name: str) -> str:
        """``name`` in the org's namespace: ``org:<org_id>:<name>``."""
        return f"{self.namespace}:{name}"

    async def ping(self) -> bool:
        """Whether Redis answers (for health checks; never raises)."""
        try:
            return bool(await self.client.ping())
        except Exception:
            return False

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()
