"""Fixed-window counters in a Litestar store (memory, or Redis shared by replicas)."""

from __future__ import annotations

import time

from litestar.stores.base import Store

from control_plane.errors import TooManyRequests


class WindowLimiter:
    """At most ``limit`` hits per key per ``window`` seconds."""

    def __init__(self, store: Store, *, limit: int, window: int, prefix: str) -> None:
        self.store, self.limit, self.window, self.prefix = store, limit, window, prefix

    def _key(self, key: str) -> tuple[str, int]:
        bucket = int(time.time() // self.window)
        retry = self.window - int(time.time() % self.window)
        return f"{self.prefix}:{bucket}:{key}", max(retry, 1)

    async def check(self, *keys: str) -> None:
        """Raise 429 with Retry-After if any key has used up its window."""
        for key in keys:
            name, retry = self._key(key)
            raw = await self.store.get(name)
            if raw is not None and int(raw) >= self.limit:
                raise TooManyRequests("Too many attempts. Try again later.", retry_after=retry)

    async def hit(self, *keys: str) -> None:
        """Count one attempt against each key."""
        for key in keys:
            name, _ = self._key(key)
            raw = await self.store.get(name)
            await self.store.set(name, str(int(raw or 0) + 1), expires_in=self.window)

    async def hit_count(self, key: str) -> int:
        """Count one attempt against ``key``; returns the window's count with it."""
        name, _ = self._key(key)
        count = int(await self.store.get(name) or 0) + 1
        await self.store.set(name, str(count), expires_in=self.window)
        return count

    async def reset(self, *keys: str) -> None:
        """Forget the attempts of ``keys`` (after a success)."""
        for key in keys:
            await self.store.delete(self._key(key)[0])
