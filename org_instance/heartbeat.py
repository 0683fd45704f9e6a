"""The heartbeat loop: report to the control plane every interval, back off while it is away.

The first heartbeat goes out as soon as the instance is ready. Then one every
``heartbeat_interval`` seconds with ±10% jitter (so a fleet started together does not beat in
step). A failure doubles the wait up to a cap; the first success returns to the interval. Until
the run's first heartbeat is accepted the instance is not yet ``running`` for the control plane,
so a failed first attempt is retried after 0.5 s, 1 s, 2 s... while that is shorter than the
interval (:func:`first_beat_delay`), and only then backs off as usual. Each
heartbeat carries the next sequence number, so the control plane can ignore replays and
duplicates. The answer's limits and interval are adopted when they change.

Every heartbeat names the contract version the instance speaks (``contract_version``); an
answer must name the same one (an answer without it comes from a control plane older than the
negotiation, which speaks version 1). A control plane that does not speak it answers ``409
contract_version_unsupported``: logged as an error, and retried with backoff like any refusal.

The first heartbeat of a run is always a ``POST``. When its answer says ``via: redis``, the
next ones are written to :func:`~orgplane_wire.contract.heartbeat_key` in the org's own Redis
namespace, and the control plane's answer is read from
:func:`~orgplane_wire.contract.heartbeat_answer_key` in the same round trip. When that answer
is missing (no control plane reads the heartbeats any more) or Redis fails, the same
heartbeat is posted instead, and the answer to that ``POST`` decides again.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import structlog

from org_instance.branding import checked_branding
from org_instance.runtime import InstanceRuntime
from orgplane_wire.contract import (
    CONTRACT_VERSION,
    HEARTBEAT_JITTER,
    HEARTBEAT_PATH,
    MAX_HEARTBEAT_BACKOFF_SECONDS,
    HeartbeatBody,
    heartbeat_answer_key,
    heartbeat_backoff_cap,
    heartbeat_key,
    heartbeat_key_ttl,
)

log = structlog.get_logger("orgplane.instance.heartbeat")

JITTER = HEARTBEAT_JITTER
MAX_BACKOFF_SECONDS = MAX_HEARTBEAT_BACKOFF_SECONDS
MIN_INTERVAL, MAX_INTERVAL = 0.05, 3600.0


class HeartbeatRefused(Exception):
    """The control plane answered, but not with an accepted heartbeat."""


def backoff_delay(interval: float, failures: int, *, rng: random.Random) -> float:
    """Seconds until the next heartbeat after ``failures`` failures in a row."""
    cap = heartbeat_backoff_cap(interval)
    base = interval if failures == 0 else min(cap, interval * 2 ** min(failures, 16))
    return base * rng.uniform(1 - JITTER, 1 + JITTER)


#: The first retry of a run's first heartbeat; each further retry doubles it.
FIRST_RETRY_SECONDS = 0.5


def first_beat_delay(interval: float, failures: int, *, rng: random.Random) -> float:
    """Seconds until the next attempt after ``failures`` (1 or more) failures in a row, before
    any heartbeat of this run was accepted: doubling from :data:`FIRST_RETRY_SECONDS` while
    shorter than ``interval``, then :func:`backoff_delay` as if those fast retries had not
    been (one interval, then doubling to the cap)."""
    fast = FIRST_RETRY_SECONDS * (1 << min(max(failures - 1, 0), 16))
    if fast < interval:
        return fast * rng.uniform(1 - JITTER, 1 + JITTER)
    fast_retries = max(0, math.ceil(math.log2(interval / FIRST_RETRY_SECONDS)))
    return backoff_delay(interval, max(0, failures - fast_retries), rng=rng)


class HeartbeatSender:
    """Sends an instance's heartbeats; :meth:`run` is the loop, :meth:`beat` one POST."""

    def __init__(
        self,
        *,
        runtime: InstanceRuntime,
        http: httpx.AsyncClient,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.runtime = runtime
        self.http = http
        self.interval = runtime.config.heartbeat_interval
        self.seq = 0
        self.failures = 0
        self.accepted = 0
        #: Whether the last answer said ``via: redis`` (and this instance has Redis).
        self.via_redis = False
        #: The contract version the control plane answered it speaks with this instance.
        self.contract_version: int | None = None
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security

    @property
    def url(self) -> str:
        """Where heartbeats go."""
        return self.runtime.config.control_plane_url + HEARTBEAT_PATH

    async def body(self, *, redis_ok: bool | None = None) -> HeartbeatBody:
        """The next heartbeat (its ``seq`` is one more than the last); Redis is pinged unless
        ``redis_ok`` is given."""
        rt = self.runtime
        db_ok = await rt.db.ping()
        if redis_ok is None:
            redis_ok = await rt.redis_ok()
        self.seq += 1
        return {
            "org_id": rt.config.org_id,
            "instance_id": rt.config.instance_id,
            "version": rt.config.version,
            "started_at": rt.started_at,
            "status": "ok" if db_ok and redis_ok else "degraded",
            "seq": self.seq,
            "db_ok": db_ok,
            "redis_ok": redis_ok,
            "usage": rt.usage.counters(),
            "config_version": rt.limits.config_version,
            "contract_version": CONTRACT_VERSION,
        }

    async def beat(self) -> dict[str, Any]:
        """Send one heartbeat (to Redis or by POST) and apply the answer; raises on failure."""
        if self.via_redis:
            # No PING of its own: the heartbeat's SET and GET are the check, and a failure
            # marks the body it then posts.
            body = await self.body(redis_ok=True)
            left = await self._beat_redis(body)
            if left is not None:
                self._apply(left)
                return left
        else:
            body = await self.body()
        response = await self.http.post(
            self.url,
            json=body,
            headers={"Authorization": f"Bearer {self.runtime.config.instance_credential}"},
        )
        if response.status_code != 200:
            code = _problem_code(response)
            if code == "contract_version_unsupported":
                log.error(
                    "the control plane does not speak this instance's contract version",
                    contract_version=CONTRACT_VERSION,
                    supported=_supported(response),
                )
            raise HeartbeatRefused(f"control plane answered {response.status_code} {code}")
        answer: dict[str, Any] = response.json()
        self._apply(answer)
        return answer

    async def _beat_redis(self, body: HeartbeatBody) -> dict[str, Any] | None:
        """Leave ``body`` in Redis and read the control plane's answer; None to post instead
        (when Redis failed, ``body`` then says so)."""
        org_id, redis = self.runtime.config.org_id, self.runtime.redis
        try:
            async with asyncio.timeout(5), redis.pipeline(transaction=False) as pipe:
                pipe.set(
                    heartbeat_key(org_id), json.dumps(body), ex=heartbeat_key_ttl(self.interval)
                )
                pipe.get(heartbeat_answer_key(org_id))
                _, raw = await pipe.execute()
            answer = json.loads(raw) if raw else None
        except Exception as exc:  # Redis away or the answer unreadable: post this one
            log.warning("heartbeat to Redis failed; posting it", error=_describe(exc))
            body["redis_ok"], body["status"] = False, "degraded"
            if self.runtime.metrics is not None:
                self.runtime.metrics.redis_error("heartbeat")
            return None
        if not isinstance(answer, dict):
            log.info("no heartbeat answer in Redis; posting", seq=body["seq"])
            return None
        return answer

    def _apply(self, answer: dict[str, Any]) -> None:
        speaks = answer.get("contract_version", 1)  # a control plane from before negotiation
        if speaks != CONTRACT_VERSION:
            raise HeartbeatRefused(f"the control plane speaks contract version {speaks!r}")
        self.contract_version = speaks
        self.via_redis = answer.get("via") == "redis" and self.runtime.redis is not None
        limits = self.runtime.limits
        if "limits" in answer and "config_version" in answer:
            version = int(answer["config_version"])
            if limits.apply(answer["limits"], config_version=version):
                log.info("limits updated", config_version=version, limits=limits.values)
        if "branding" in answer:
            self._adopt_branding(answer["branding"])
        interval = answer.get("interval")
        if isinstance(interval, int | float) and MIN_INTERVAL <= interval <= MAX_INTERVAL:
            self.interval = float(interval)
        if answer.get("accepted"):
            self.accepted += 1

    def _adopt_branding(self, raw: Any) -> None:
        branding = checked_branding(raw)
        if branding is None:
            log.warning("branding in the heartbeat answer ignored: not the contract's shape")
        elif branding != self.runtime.branding:
            self.runtime.branding = branding
            log.info("branding updated", display_name=branding["display_name"])

    async def run(self) -> None:
        """Beat until cancelled; never raises."""
        while True:
            try:
                await self.beat()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the control plane may be down; keep trying
                if _cancel_requested():  # a cancel the Redis client turned into an error
                    raise asyncio.CancelledError from exc
                self.failures += 1
                log.warning(
                    "heartbeat failed", error=_describe(exc), failures=self.failures, seq=self.seq
                )
            else:
                if self.failures:
                    log.info("heartbeat resumed", after_failures=self.failures)
                self.failures = 0
            if self.failures and not self.accepted:
                delay = first_beat_delay(self.interval, self.failures, rng=self._rng)
            else:
                delay = backoff_delay(self.interval, self.failures, rng=self._rng)
            if _cancel_requested():  # a cancel the Redis client swallowed
                raise asyncio.CancelledError
            await self._sleep(delay)


def _cancel_requested() -> bool:
    """Whether this task has been asked to stop: redis-py can turn a cancellation that lands
    while it reads a reply into ``ConnectionError``, or end it quietly (redis/redis-py#2665),
    and this loop would then beat on after its instance shut down."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _problem_code(response: httpx.Response) -> str:
    try:
        return str(response.json().get("code", ""))[:64]
    except ValueError:
        return ""


def _supported(response: httpx.Response) -> list[int]:
    try:
        supported = response.json().get("supported", [])
    except ValueError:
        return []
    return [v for v in supported if isinstance(v, int)][:16] if isinstance(supported, list) else []


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]
