"""Heartbeats: tell the control plane every interval that the instance is alive.

:class:`HeartbeatSender` POSTs a :class:`~orgplane_sdk.contract.HeartbeatBody` (with
``contract_version``) to ``{control plane}/api/v1/instances/heartbeat`` with the instance
credential as Bearer token, at once and then every interval with ±10% jitter. It adopts the
interval and limits of each answer. A failure (no answer, or any status but 200) doubles the
wait up to the contract's cap (:func:`~orgplane_sdk.contract.heartbeat_backoff_cap`); until
the first heartbeat is accepted, retries start at 0.5 s so the org reaches ``running`` soon.
The control plane answers ``409 contract_version_unsupported`` when it does not speak this
SDK's contract version: that is a failure like any other, logged with the versions it supports.
A control plane from before version negotiation refuses the unknown ``contract_version`` field
(400): the heartbeat is sent again without it, and so are the next ones (absent means 1).
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from orgplane_sdk.contract import (
    CONTRACT_VERSION,
    HEARTBEAT_JITTER,
    HEARTBEAT_PATH,
    HeartbeatAnswer,
    HeartbeatBody,
    Limits,
    UsageCounters,
    heartbeat_backoff_cap,
)

log = logging.getLogger("orgplane_sdk.heartbeat")

#: Intervals outside this range in an answer are ignored.
MIN_INTERVAL, MAX_INTERVAL = 0.05, 3600.0
FIRST_RETRY_SECONDS = 0.5

#: Answers whether the app's own dependencies (its database, Redis) work: ``(db_ok, redis_ok)``.
HealthCheck = Callable[[], Awaitable[tuple[bool, bool]]]


async def all_healthy() -> tuple[bool, bool]:
    """The default health check: nothing to check, all is well."""
    return True, True


def _no_usage() -> UsageCounters:
    return {}


class HeartbeatRefused(Exception):
    """The control plane answered, but did not accept the heartbeat."""


def next_delay(interval: float, failures: int, accepted: bool, rng: random.Random) -> float:
    """Seconds until the next heartbeat after ``failures`` failures in a row: the interval;
    while failing, doubled per failure up to the contract's cap. Before any beat was
    ``accepted``, failures are first retried after 0.5 s, 1 s, 2 s... while that is shorter
    than the interval, then back off as if those fast retries had not been."""
    if failures and not accepted:
        fast = FIRST_RETRY_SECONDS * (1 << min(failures - 1, 16))
        if fast < interval:
            return fast * rng.uniform(1 - HEARTBEAT_JITTER, 1 + HEARTBEAT_JITTER)
        failures -= max(0, math.ceil(math.log2(interval / FIRST_RETRY_SECONDS)))
    base = min(heartbeat_backoff_cap(interval), interval * (1 << min(max(failures, 0), 16)))
    return base * rng.uniform(1 - HEARTBEAT_JITTER, 1 + HEARTBEAT_JITTER)


class HeartbeatSender:
    """One instance's heartbeats; :meth:`run` is the loop (an asyncio task), :meth:`beat` one."""

    def __init__(
        self,
        *,
        control_plane_url: str,
        credential: str,
        org_id: str,
        instance_id: str,
        version: str = "0.0.0",
        interval: float = 10.0,
        limits: Limits | None = None,
        health: HealthCheck = all_healthy,
        usage: Callable[[], UsageCounters] = _no_usage,
        http: httpx.AsyncClient | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.url = control_plane_url.rstrip("/") + HEARTBEAT_PATH
        self._credential = credential
        self.org_id, self.instance_id, self.version = org_id, instance_id, version
        self.interval = interval
        #: The plan limits from the last answer (or the environment until then).
        self.limits: Limits = dict(limits or {})  # type: ignore[assignment]
        self.config_version = 0
        #: The contract version the control plane said it speaks with this instance.
        self.contract_version = CONTRACT_VERSION
        self.started_at = datetime.now(UTC).isoformat()
        self.seq = self.failures = self.accepted = 0
        self._health, self._usage = health, usage
        self._http, self._owns_http = http, http is None
        self._announce_version = True
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security

    async def body(self) -> HeartbeatBody:
        """The next heartbeat body (``seq`` one more than the last)."""
        db_ok, redis_ok = await self._health()
        self.seq += 1
        return {
            "org_id": self.org_id,
            "instance_id": self.instance_id,
            "version": self.version,
            "started_at": self.started_at,
            "status": "ok" if db_ok and redis_ok else "degraded",
            "seq": self.seq,
            "db_ok": db_ok,
            "redis_ok": redis_ok,
            "usage": self._usage(),
            "config_version": self.config_version,
            "contract_version": CONTRACT_VERSION,
        }

    async def beat(self) -> HeartbeatAnswer:
        """Send one heartbeat and adopt its answer; raises when it was not accepted."""
        body = await self.body()
        if not self._announce_version:
            del body["contract_version"]
        answer = await self._post(body)
        if (
            answer.status_code == 400
            and self._announce_version
            and "contract_version" in answer.text
        ):
            # A control plane from before version negotiation refuses the unknown field; to it,
            # an absent version means 1, which is what this SDK speaks.
            self._announce_version = False
            log.info("the control plane predates contract_version; not sending it")
            del body["contract_version"]
            answer = await self._post(body)
        try:
            data = answer.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            data = {}
        if answer.status_code != 200 or not data.get("accepted"):
            code, supported = data.get("code", ""), data.get("supported")
            extra = f" (supported: {supported})" if supported is not None else ""
            raise HeartbeatRefused(f"control plane answered {answer.status_code} {code}{extra}")
        self._adopt(data)
        return data  # type: ignore[return-value]

    async def _post(self, body: HeartbeatBody) -> httpx.Response:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=10.0, follow_redirects=False)
        headers = {"Authorization": f"Bearer {self._credential}"}
        return await self._http.post(self.url, json=body, headers=headers)

    def _adopt(self, answer: dict[str, Any]) -> None:
        self.accepted += 1
        interval = answer.get("interval")
        if isinstance(interval, int | float) and MIN_INTERVAL <= interval <= MAX_INTERVAL:
            self.interval = float(interval)
        if isinstance(answer.get("limits"), dict):
            self.limits = answer["limits"]
        if isinstance(answer.get("config_version"), int):
            self.config_version = answer["config_version"]
        self.contract_version = int(answer.get("contract_version", CONTRACT_VERSION))

    async def run(self) -> None:
        """Beat until cancelled; failures are logged and retried, never raised."""
        while True:
            try:
                await self.beat()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the control plane may be away: keep trying
                self.failures += 1
                log.warning("heartbeat failed (%d in a row): %s", self.failures, exc)
            else:
                self.failures = 0
            await self._sleep(
                next_delay(self.interval, self.failures, self.accepted > 0, self._rng)
            )

    async def aclose(self) -> None:
        """Close the HTTP client if the sender made it."""
        if self._owns_http and self._http is not None:
            await self._http.aclose()
