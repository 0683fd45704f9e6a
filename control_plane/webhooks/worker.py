"""The webhook worker: fan events out to endpoints, claim due deliveries, send them.

Every replica runs one (started by the app's lifespan). Each round it

1. dispatches new events: an event is taken by one replica (a conditional ``UPDATE`` of its
   ``dispatched_at``) and becomes one delivery per endpoint subscribed to its type (endpoints
   registered after the event do not get it);
2. claims due deliveries with a lease (a conditional ``UPDATE`` of ``lease_until``), so two
   replicas never send the same attempt, and a replica that dies mid-delivery leaves a lease
   that expires and another replica retries;
3. sends each claimed delivery in a task of its own (at most :data:`MAX_IN_FLIGHT`), so a slow
   or dead receiver holds only its own delivery for at most :data:`TIMEOUT` seconds. Nothing
   else waits for it: events are rows, written by the request or reconciler pass that caused
   them.

A 2xx answer is success. Anything else (another status, a timeout, a refused connection) is
recorded in the delivery's ``attempt_log`` and retried after ``ORGPLANE_WEBHOOK_RETRY_SECONDS``
x 2^(attempt - 1) (at most an hour), until ``ORGPLANE_WEBHOOK_MAX_ATTEMPTS`` attempts were
made: then the delivery is ``failed``. A destination refused by the SSRF guard fails at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any, Final

import httpx
import structlog
from sqlalchemy import delete as sql_delete
from sqlalchemy import or_, update
from sqlmodel import col, select

from control_plane.db.models import WebhookDelivery, WebhookEndpoint, WebhookEvent, utcnow
from control_plane.runtime import Runtime
from control_plane.store_errors import log_job_failure
from control_plane.webhooks.destinations import DestinationRefused, resolve
from control_plane.webhooks.signing import signed_headers

log = structlog.get_logger("orgplane.webhooks")

#: Seconds between rounds.
POLL_SECONDS: Final = 1.0
#: Seconds one attempt may take (connect included).
TIMEOUT: Final = 10.0
#: Seconds a claimed delivery stays ours: longer than an attempt can take.
LEASE_SECONDS: Final = 60.0
MAX_IN_FLIGHT: Final = 16
MAX_BACKOFF: Final = 3600.0
BATCH: Final = 50
#: Finished deliveries, and dispatched events none of which is pending, are kept this long.
KEEP_DAYS: Final = 30
#: Seconds between two prunes by one replica.
PRUNE_EVERY: Final = 3600.0


def retry_delay(base: float, attempts: int) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones."""
    return float(min(base * 2 ** max(attempts - 1, 0), MAX_BACKOFF))


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """httpx's default verification (certifi's CA bundle), built once per process: each new
    context loads the bundle again, ~45 ms of CPU at every start of the worker."""
    return httpx.create_ssl_context(trust_env=False)


class WebhookWorker:
    """See the module docstring."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.owner = f"webhooks-{runtime.replica_id}"
        self.in_flight: set[asyncio.Task[None]] = set()
        self._pruned_at = 0.0
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(TIMEOUT),
            follow_redirects=False,
            trust_env=False,
            verify=_tls_context(),
        )

    async def run_forever(self) -> None:
        """Rounds until cancelled; a failing round is logged and the next one tries again."""
        try:
            while True:
                try:
                    await self.run_once()
                except Exception as exc:
                    log_job_failure("webhook round failed", exc)
                await asyncio.sleep(POLL_SECONDS)
        finally:
            for task in list(self.in_flight):
                task.cancel()
            await asyncio.gather(*self.in_flight, return_exceptions=True)
            await self._http.aclose()

    async def run_once(self) -> None:
        """Dispatch new events, then start sending what is due (and now and then prune)."""
        if time.monotonic() - self._pruned_at >= PRUNE_EVERY:
            await self.prune()
            self._pruned_at = time.monotonic()
        await self.dispatch()
        room = MAX_IN_FLIGHT - len(self.in_flight)
        for delivery_id in await self.claim(room) if room > 0 else []:
            task = asyncio.create_task(self.deliver(delivery_id), name="orgplane-webhook")
            self.in_flight.add(task)
            task.add_done_callback(self.in_flight.discard)

    async def dispatch(self) -> int:
        """Turn undispatched events into deliveries; returns how many events were taken."""
        taken = 0
        async with self.runtime.sessions() as db:
            query = (
                select(WebhookEvent)
                .where(col(WebhookEvent.dispatched_at).is_(None))
                .order_by(col(WebhookEvent.created_at))
                .limit(BATCH)
            )
            events = list((await db.exec(query)).all())
            if not events:
                return 0
            endpoints = list((await db.exec(select(WebhookEndpoint))).all())
            now = utcnow()
            for event in events:
                claim = (
                    update(WebhookEvent)
                    .where(
                        col(WebhookEvent.id) == event.id,
                        col(WebhookEvent.dispatched_at).is_(None),
                    )
                    .values(dispatched_at=now)
                )
                if (await db.exec(claim)).rowcount != 1:
                    continue  # another replica took it
                taken += 1
                for endpoint in endpoints:
                    if (
                        event.type in endpoint.event_types
                        and endpoint.created_at <= event.created_at
                    ):
                        db.add(
                            WebhookDelivery(
                                endpoint_id=endpoint.id,
                                event_id=event.id,
                                event_type=event.type,
                                next_attempt_at=now,
                            )
                        )
            await db.commit()
        return taken

    async def prune(self) -> None:
        """Delete deliveries finished more than :data:`KEEP_DAYS` days ago, then dispatched
        events as old that no delivery refers to any more."""
        cutoff = utcnow() - timedelta(days=KEEP_DAYS)
        async with self.runtime.sessions() as db:
            await db.exec(
                sql_delete(WebhookDelivery).where(
                    col(WebhookDelivery.status) != "pending",
                    col(WebhookDelivery.completed_at) < cutoff,
                )
            )
            referenced = select(WebhookDelivery.event_id)
            await db.exec(
                sql_delete(WebhookEvent).where(
                    col(WebhookEvent.dispatched_at) < cutoff,
                    col(WebhookEvent.id).not_in(referenced),
                )
            )
            await db.commit()

    async def claim(self, limit: int) -> list[str]:
        """Lease up to ``limit`` due deliveries to this replica."""
        now = utcnow()
        free = or_(
            col(WebhookDelivery.lease_until).is_(None), col(WebhookDelivery.lease_until) < now
        )
        async with self.runtime.sessions() as db:
            query = (
                select(WebhookDelivery.id)
                .where(
                    col(WebhookDelivery.status) == "pending",
                    col(WebhookDelivery.next_attempt_at) <= now,
                    free,
                )
                .order_by(col(WebhookDelivery.next_attempt_at))
                .limit(limit)
            )
            candidates = list((await db.exec(query)).all())
            claimed = []
            for delivery_id in candidates:
                lease = (
                    update(WebhookDelivery)
                    .where(col(WebhookDelivery.id) == delivery_id, free)
                    .values(
                        lease_owner=self.owner,
                        lease_until=now + timedelta(seconds=LEASE_SECONDS),
                    )
                )
                if (await db.exec(lease)).rowcount == 1:
                    claimed.append(delivery_id)
            await db.commit()
        return claimed

    async def deliver(self, delivery_id: str) -> None:
        """One attempt of a claimed delivery, and its outcome recorded."""
        async with self.runtime.sessions() as db:
            delivery = await db.get(WebhookDelivery, delivery_id)
            if delivery is None or delivery.lease_owner != self.owner:
                return
            endpoint = await db.get(WebhookEndpoint, delivery.endpoint_id)
            event = await db.get(WebhookEvent, delivery.event_id)
        if endpoint is None or event is None:
            return
        started = time.monotonic()
        code, error, final = await self._attempt(endpoint, event)
        await self._record(delivery_id, code=code, error=error, final=final, started=started)

    async def _attempt(
        self, endpoint: WebhookEndpoint, event: WebhookEvent
    ) -> tuple[int | None, str, bool]:
        """(HTTP status or None, error, whether no retry can help)."""
        fleet = self.runtime.settings.fleet
        try:
            target = await resolve(endpoint.url, allow_private=fleet.webhook_allow_private)
        except DestinationRefused as exc:
            return None, exc.detail, True
        body = event.body.encode()
        secret = self.runtime.box.decrypt(endpoint.secret_enc).decode()
        headers = signed_headers(
            secret, msg_id=f"msg_{event.id}", timestamp=int(time.time()), body=body
        )
        url = httpx.URL(target.url)
        extensions: dict[str, Any] = {}
        if url.scheme == "https":
            extensions["sni_hostname"] = target.host
        headers["host"] = url.netloc.decode("ascii")
        headers["user-agent"] = "orgplane-webhooks"
        try:
            answer = await self._http.post(
                url.copy_with(host=target.address),
                content=body,
                headers=headers,
                extensions=extensions,
            )
        except (httpx.HTTPError, OSError) as exc:
            return None, f"{type(exc).__name__}: {exc}"[:300], False
        if 200 <= answer.status_code < 300:
            return answer.status_code, "", False
        return answer.status_code, f"HTTP {answer.status_code}", False

    async def _record(
        self, delivery_id: str, *, code: int | None, error: str, final: bool, started: float
    ) -> None:
        fleet = self.runtime.settings.fleet
        now = utcnow()
        async with self.runtime.sessions() as db:
            delivery = await db.get(WebhookDelivery, delivery_id)
            if delivery is None or delivery.lease_owner != self.owner:
                return  # our lease ran out and another replica has it
            delivery.attempts += 1
            entry = {
                "at": now.isoformat(),
                "status_code": code,
                "error": error,
                "duration_ms": round((time.monotonic() - started) * 1000, 1),
            }
            delivery.attempt_log = [*delivery.attempt_log, entry]
            delivery.last_status_code, delivery.last_error = code, error[:500]
            delivery.lease_owner, delivery.lease_until = "", None
            if not error:
                delivery.status, delivery.completed_at = "succeeded", now
            elif final or delivery.attempts >= fleet.webhook_max_attempts:
                delivery.status, delivery.completed_at = "failed", now
                log.warning("webhook delivery failed", delivery_id=delivery_id, error=error)
            else:
                delay = retry_delay(fleet.webhook_retry_seconds, delivery.attempts)
                delivery.next_attempt_at = now + timedelta(seconds=delay)
            db.add(delivery)
            await db.commit()


@contextlib.asynccontextmanager
async def webhook_worker(runtime: Runtime) -> AsyncIterator[WebhookWorker]:
    """Run a worker for the app's lifetime."""
    worker = WebhookWorker(runtime)
    task = asyncio.create_task(worker.run_forever(), name="orgplane-webhooks")
    try:
        yield worker
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(task, timeout=10)
