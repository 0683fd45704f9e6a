"""Atomic fixed-window throttles, shared by every replica: the ``limits`` library.

One :class:`Throttle` per process (``Runtime.throttle``) serves every limit of the control
plane: login attempts (:mod:`control_plane.identity.login_throttle`) and bad heartbeat
credentials (:mod:`control_plane.instances.routes`). Each count is one atomic operation of the
storage: a Lua ``INCRBY`` + ``EXPIRE`` script in Redis when ``ORGPLANE_REDIS_URL`` is set (so
replicas and concurrent requests share exact counts), a locked counter in memory otherwise.
The Redis client is the asyncio client of the ``redis`` package we already use
(``implementation="redispy"``), and keys live under ``orgplane:<deployment id>:limits``.

Why ``limits``: it is maintained, typed, has an asyncio API and both storages, and its fixed
window is one atomic increment, which is what closes the read-then-write race of the store
counters this replaced (concurrent attempts read the same count and each wrote count + 1).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter
from redis.asyncio import BlockingConnectionPool

from orgplane_wire.problems import TooManyRequests

TOO_MANY = "Too many attempts. Try again later."
#: Redis connections of one process's throttle, and how long a request waits for one.
REDIS_CONNECTIONS = 50
REDIS_WAIT_SECONDS = 5.0


@dataclass(frozen=True)
class Limit:
    """At most ``amount`` counts per key per ``window`` seconds, named ``name`` in the keys."""

    name: str
    amount: int
    window: int

    @property
    def item(self) -> RateLimitItem:
        return RateLimitItemPerSecond(self.amount, self.window, namespace=self.name)


class Throttle:
    """Counts hits per (limit, key) atomically and answers 429 with Retry-After past a limit."""

    def __init__(self, storage: Storage, pool: BlockingConnectionPool | None = None) -> None:
        self.storage, self.pool = storage, pool
        self.strategy = FixedWindowRateLimiter(storage)

    @classmethod
    def build(cls, redis_url: str, *, prefix: str) -> Throttle:
        """Redis at ``redis_url`` (keys under ``prefix``), or memory when it is empty.

        The Redis connections are a blocking pool: a burst of requests (1,000 concurrent logins
        in the full-size proof) waits for one of :data:`REDIS_CONNECTIONS` connections instead
        of failing once redis-py's default pool (100) is used up.
        """
        if not redis_url:
            return cls(MemoryStorage())
        pool = BlockingConnectionPool.from_url(
            redis_url, max_connections=REDIS_CONNECTIONS, timeout=REDIS_WAIT_SECONDS
        )
        options: dict[str, Any] = {"connection_pool": pool}
        url = redis_url if redis_url.startswith("async+") else f"async+{redis_url}"
        return cls(RedisStorage(url, implementation="redispy", key_prefix=prefix, **options), pool)

    async def _retry_after(self, limit: Limit, key: str) -> int:
        stats = await self.strategy.get_window_stats(limit.item, key)
        return max(1, math.ceil(stats.reset_time - time.time()))

    async def acquire(self, *counts: tuple[Limit, str]) -> None:
        """Count one hit against each ``(limit, key)``, in order; 429 at the first one over its
        limit, whose hit is the last counted (the later limits are left as they were)."""
        for limit, key in counts:
            if not await self.strategy.hit(limit.item, key):
                raise TooManyRequests(TOO_MANY, retry_after=await self._retry_after(limit, key))

    async def check(self, limit: Limit, key: str) -> None:
        """429 if ``key`` has used up ``limit``; counts nothing."""
        if not await self.strategy.test(limit.item, key):
            raise TooManyRequests(TOO_MANY, retry_after=await self._retry_after(limit, key))

    async def count(self, limit: Limit, key: str) -> None:
        """Count one hit against ``key`` without refusing anything."""
        await self.strategy.hit(limit.item, key)

    async def hit_count(self, limit: Limit, key: str) -> int:
        """Count one hit against ``key`` and return the window's count with it (one atomic
        increment: exactly one caller sees each count, e.g. the one that reaches a threshold)."""
        item = limit.item
        return int(await self.storage.incr(item.key_for(key), item.get_expiry()))

    async def release(self, limit: Limit, key: str) -> None:
        """Give back one hit :meth:`acquire` counted (the attempt turned out legitimate).

        If the window ended in between, the give-back lands in the next one: at most one more
        attempt in that window, which keeps the refund a single atomic operation.
        """
        item = limit.item
        await self.storage.incr(item.key_for(key), item.get_expiry(), amount=-1)

    async def clear(self, limit: Limit, key: str) -> None:
        """Forget every hit of ``key`` against ``limit``."""
        await self.strategy.clear(limit.item, key)

    async def close(self) -> None:
        """Close the Redis connections, if any."""
        if self.pool is not None:
            await self.pool.disconnect()
