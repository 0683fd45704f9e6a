"""The Redis side of the heartbeat reader (:mod:`control_plane.instances.ingest`): the scripts
that read heartbeat keys and renew answer keys, the reader lock, the answer keys' lifetime and
the decoding of a heartbeat read."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import msgspec
import structlog
from redis.exceptions import LockError, RedisError

from control_plane.instances.judging import HeartbeatIn
from control_plane.runtime import Runtime
from orgplane_wire.contract import heartbeat_answer_key

log = structlog.get_logger("orgplane.instances.ingest")

#: Largest heartbeat value read (a real one is about 400 bytes).
MAX_HEARTBEAT_BYTES = 4096
TOO_BIG = b"!"

#: Returns, for each key, its value when it is a string of at most ARGV[1] bytes, ``""`` when
#: it is missing or empty, ``"!"`` when it is bigger or not a string.
READ_SCRIPT = """
local out = {}
local cap = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  local size = redis.pcall('STRLEN', key)
  if type(size) ~= 'number' or size > cap then
    out[i] = '!'
  elseif size == 0 then
    out[i] = ''
  else
    out[i] = redis.call('GET', key)
  end
end
return out
"""

#: Renews each key's expiry to ARGV[1] seconds; returns the (1-based) positions of the keys
#: that do not exist.
RENEW_SCRIPT = """
local missing = {}
for i, key in ipairs(KEYS) do
  if redis.call('EXPIRE', key, ARGV[1]) == 0 then
    missing[#missing + 1] = i
  end
end
return missing
"""


def uses_redis(runtime: Runtime) -> bool:
    """Whether instances of this deployment heartbeat over Redis after their first beat."""
    return (
        runtime.settings.provisioning.heartbeat_transport == "redis"
        and runtime.redis_admin is not None
    )


def poll_seconds(runtime: Runtime) -> float:
    """Seconds between reads: the setting, at most half an interval."""
    provisioning = runtime.settings.provisioning
    return min(provisioning.heartbeat_poll_seconds, provisioning.heartbeat_interval / 2)


def answer_ttl(runtime: Runtime) -> int:
    """Seconds an answer key lives after the last read renewed it: longer than the gap between
    two heartbeats read (1.1 intervals plus a poll), short enough that instances go back to
    posting soon after the last reader stopped."""
    provisioning = runtime.settings.provisioning
    return math.ceil(2 * provisioning.heartbeat_interval + 2 * poll_seconds(runtime))


def reader_lock(runtime: Runtime) -> str:
    """The Redis key of the lock the reading replica holds."""
    return f"orgplane:{runtime.settings.provisioning.deployment_id}:heartbeat-reader"


async def publish_answer(runtime: Runtime, org_id: str, answer: Any) -> bool:
    """Leave ``answer`` in the org's answer key when a replica reads heartbeats (the lock is
    held); False, with nothing written, when none does or Redis failed."""
    redis = runtime.redis_admin
    if redis is None:
        return False
    try:
        if not await redis.exists(reader_lock(runtime)):
            return False
        await redis.set(
            heartbeat_answer_key(org_id), msgspec.json.encode(answer), ex=answer_ttl(runtime)
        )
    except (RedisError, OSError) as exc:
        log.warning("heartbeat answer not written", org_id=org_id, error=type(exc).__name__)
        return False
    return True


def cancel_requested() -> bool:
    """Whether this task has been asked to stop. redis-py can turn a cancellation that lands
    while it reads a reply into ``ConnectionError("Connection closed by server.")``, or end it
    quietly (redis/redis-py#2665): a loop that logs errors and carries on would then never
    stop, and the shutdown that waits for it would hang. Seen here in a test run: a reader
    that kept reading for 15 minutes after it was cancelled."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def hold_lock(lock: Any) -> bool:
    """Renew the reader lock when this replica holds it, else try to take it."""
    if lock.local.token:
        try:
            return bool(await lock.extend(lock.timeout, replace_ttl=True))
        except LockError:  # lost (it expired and another replica took it)
            lock.local.token = None
    return bool(await lock.acquire())


def decode(raw: bytes) -> HeartbeatIn | None:
    if raw == TOO_BIG:
        return None
    try:
        return msgspec.json.decode(raw, type=HeartbeatIn)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
