"""Faults the tests inject where a real component cannot be made to fail on cue."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError

T = TypeVar("T")


async def hide_the_cancel(entered: asyncio.Event, *, quietly: bool) -> None:
    """Wait until cancelled, then report the cancel the way redis-py can (redis/redis-py#2665):
    as ``ConnectionError("Connection closed by server.")``, or, ``quietly``, not at all."""
    entered.set()
    try:
        await asyncio.sleep(30)  # a read that blocks until it is cancelled
    except asyncio.CancelledError:
        if not quietly:
            raise RedisConnectionError("Connection closed by server.") from None


async def cancel_once_entered(loop: asyncio.Task[None], entered: asyncio.Event) -> None:
    """Cancel ``loop`` once it waits in :func:`hide_the_cancel`; assert that it stops, cancelled,
    within 5 s (a loop that went on would hang whoever waits for it)."""
    await asyncio.wait_for(entered.wait(), timeout=10)
    loop.cancel()
    done, _ = await asyncio.wait({loop}, timeout=5)
    assert done, "the loop went on after it was cancelled"
    assert loop.cancelled()


def held(
    real: Callable[..., Awaitable[T]], *, entered: asyncio.Event, release: asyncio.Event
) -> Callable[..., Awaitable[T]]:
    """``real``, made slow: each call sets ``entered``, waits (at most 120 s) until the test
    sets ``release``, then runs ``real`` (a long backup or restore, on cue)."""

    async def slow(*args: Any, **kwargs: Any) -> T:
        entered.set()
        await asyncio.wait_for(release.wait(), timeout=120)
        return await real(*args, **kwargs)

    return slow
