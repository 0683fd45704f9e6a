"""What every handler of one org instance shares: config, database, verifier, stores, counters.

One instance serves one org in one process (one uvicorn worker), so the usage counters and the
current limits live here; everything durable lives in the SQLite database.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import structlog
from litestar.channels import ChannelsPlugin
from litestar.stores.base import Store

from org_instance.config import LIMIT_KEYS, InstanceConfig, check_limits
from org_instance.crypto import SettingsBox
from org_instance.db import Database
from org_instance.verifier import JWKSVerifier
from orgplane_wire.contract import Branding, Limits, UsageCounters
from orgplane_wire.problems import Forbidden, TooManyRequests

log = structlog.get_logger("orgplane.instance")

RATE_WINDOW_SECONDS = 60


def utc_now() -> str:
    """Now as an ISO 8601 UTC string (sorts in time order)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


@dataclass
class Usage:
    """Counters since this process started (reported in heartbeats), and bytes stored now."""

    requests: int = 0
    sessions: int = 0
    messages: int = 0
    files: int = 0
    storage_bytes: int = 0
    users: set[str] = field(default_factory=set)

    def counters(self) -> UsageCounters:
        """The heartbeat's ``usage`` object."""
        return {
            "requests": self.requests,
            "sessions": self.sessions,
            "messages": self.messages,
            "files": self.files,
            "storage_bytes": self.storage_bytes,
            "active_users": len(self.users),
        }


class LimitsState:
    """The plan limits in force; the heartbeat answer replaces them when they change."""

    def __init__(self, limits: dict[str, int]) -> None:
        self.values: dict[str, int] = dict(limits)
        self.config_version = 0

    def get(self, name: str) -> int | None:
        """The limit called ``name``, or None when unlimited."""
        return self.values.get(name)

    def apply(self, limits: Any, *, config_version: int) -> bool:
        """Adopt ``limits`` from the control plane; True when something changed.

        Keys this instance does not know (a newer control plane) are ignored, not fatal.
        """
        known = (
            {k: v for k, v in limits.items() if k in LIMIT_KEYS} if isinstance(limits, dict) else {}
        )
        checked = check_limits(known, source="heartbeat answer")
        changed = checked != self.values or config_version != self.config_version
        self.values, self.config_version = checked, config_version
        return changed

    def as_contract(self) -> Limits:
        """The limits as the contract's TypedDict."""
        return cast(Limits, dict(self.values))

    def check_quota(self, name: str, *, used: int, adding: int = 1) -> None:
        """403 ``quota_exceeded`` when ``used + adding`` goes over the limit ``name``."""
        limit = self.get(name)
        if limit is not None and used + adding > limit:
            raise Forbidden(
                f"The plan allows {limit} ({name}); this would make {used + adding}.",
                code="quota_exceeded",
                limit=name,
                allowed=limit,
            )


class RateLimiter:
    """``requests_per_minute`` per user: fixed one-minute windows counted in the org's store.

    The read-modify-write runs under a lock: one process serves the org, so counts are exact.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = asyncio.Lock()

    async def hit(self, user: str, *, limit: int) -> None:
        """Count one request of ``user``; 429 with Retry-After once the window is used up."""
        now = time.time()
        window = int(now // RATE_WINDOW_SECONDS)
        key = f"ratelimit:{window}:{user}"
        async with self._lock:
            raw = await self.store.get(key)
            count = int(raw or 0)
            if count >= limit:
                retry = RATE_WINDOW_SECONDS - int(now % RATE_WINDOW_SECONDS)
                raise TooManyRequests(
                    f"At most {limit} requests per minute.", retry_after=retry, limit=limit
                )
            await self.store.set(key, str(count + 1), expires_in=RATE_WINDOW_SECONDS + 1)


@dataclass
class InstanceRuntime:
    """One org instance's shared parts, built at start-up."""

    config: InstanceConfig
    db: Database
    verifier: JWKSVerifier
    box: SettingsBox
    store: Store
    limiter: RateLimiter
    limits: LimitsState
    channels: ChannelsPlugin
    started_at: str = field(default_factory=utc_now)
    usage: Usage = field(default_factory=Usage)
    redis: Any = None
    heartbeat: Any = None
    #: The org's revocation list (``org_instance.revocations.Revocations``).
    revocations: Any = None
    #: Prometheus series (``org_instance.metrics.InstanceMetrics``).
    metrics: Any = None
    #: The org's branding from the last heartbeat answer that carried it (None before).
    branding: Branding | None = None

    @property
    def files_dir(self) -> Any:
        """Where uploaded files live (named by id, never by the client's name)."""
        return self.config.data_dir / "files"

    def session_channel(self, session_id: str) -> str:
        """The channel carrying a session's new messages (under the org's Redis prefix)."""
        return f"{self.config.namespace}:session:{session_id}"

    async def redis_ok(self) -> bool:
        """Whether Redis answers (True when the instance runs on memory backends)."""
        if self.redis is None:
            return True
        try:
            async with asyncio.timeout(2):
                return bool(await self.redis.ping())
        except Exception:  # any failure is "not reachable", reported by /readyz
            if self.metrics is not None:
                self.metrics.redis_error("ping")
            return False

    async def count_request(self, user: str) -> None:
        """Count an authenticated request of ``user``, rate limited per the plan."""
        limit = self.limits.get("requests_per_minute")
        if limit is not None:
            await self.limiter.hit(user, limit=limit)
        self.usage.requests += 1
        if len(self.usage.users) < 100_000:
            self.usage.users.add(user)
