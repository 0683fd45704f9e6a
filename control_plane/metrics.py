"""Prometheus metrics of the control plane, served at ``GET /metrics`` (Bearer metrics token).

Two kinds of series:

* **Process series** (HTTP latency, token requests, reconciler passes, backups;
  :mod:`control_plane.process_metrics`) are counted by the process that did the work. Each app
  owns its registry (no module-wide state, so tests can build apps side by side). Under
  ``orgplane serve --workers N`` the CLI sets ``PROMETHEUS_MULTIPROC_DIR`` and
  prometheus-client writes every value to files there; a scrape answered by any worker then
  sums all workers (:func:`exposition`).
* **Fleet series** (orgs by phase and version, heartbeat lag, rollout progress) describe the
  database, which every replica shares, so they are read at scrape time and never stored in a
  process.

Labels are bounded: HTTP series carry the route *template* (``/api/v1/orgs/{org_ref}``), never
a raw path, and no org or user id; token refusals carry the OAuth error code.

What a scrape costs grows with the route templates and statuses a replica has seen, so the HTTP
series are shaped for it (``benchmarks/bench_metrics_sd.py``, docs/performance.md): latency is a
histogram by method and route only, with nine buckets, and the status code is a label of a plain
counter beside it (one sample per route and status instead of a histogram's fourteen). The
``_created`` samples are not exposed (:func:`prometheus_client.disable_created_metrics`):
Prometheus 2 ignores them in the text format, and they were one sample in four.

Litestar's own ``PrometheusMiddleware`` is not used: it keeps its metrics in a class-wide dict on
prometheus-client's global registry, so two apps in one process share (and clash on) them.
"""

from __future__ import annotations

import gzip
import hmac
import os
from collections.abc import Iterable, Iterator
from typing import Any

from litestar import Request, Response, get
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send
from prometheus_client import (
    CollectorRegistry,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import gzip_accepted
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func
from sqlalchemy import select as columns
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.auth import bearer_token
from control_plane.db.fleet_models import Rollout, RolloutOrg
from control_plane.db.models import Instance, Org, utcnow
from control_plane.db.phases import OrgPhase
from control_plane.deps import DB, RuntimeDep
from control_plane.orgs.hierarchy import live_orgs
from control_plane.process_metrics import ControlPlaneMetrics
from orgplane_wire.http_metrics import MEDIA_TYPE, observe_http
from orgplane_wire.problems import Unauthenticated

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> str:
    """The directory worker processes share their values in, or "" (one process)."""
    return os.environ.get(MULTIPROC_ENV, "")


def metrics_of(app_state: Any) -> ControlPlaneMetrics | None:
    """The app's metrics (None for an app built without them)."""
    metrics: ControlPlaneMetrics | None = getattr(app_state, "metrics", None)
    return metrics


class HTTPMetricsMiddleware:
    """Observes each routed HTTP request's latency under its route template.

    Litestar runs app middleware after routing, so ``path_template`` is known; unrouted
    requests (404, 405) never reach here, which keeps the route label bounded."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        metrics = metrics_of(scope["app"].state)
        if scope["type"] != ScopeType.HTTP or metrics is None:
            await self.app(scope, receive, send)
            return
        await observe_http(self.app, scope, receive, send, observe=metrics.http_request)


class _Families(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterator[Metric]:
        yield from self.families


async def fleet_families(db: AsyncSession, *, heartbeat_interval: float) -> list[Metric]:
    """Orgs by phase and version, and heartbeat lag, as the database says now."""
    by_phase = GaugeMetricFamily("orgplane_orgs", "Live orgs by phase.", labels=["phase"])
    query = columns(col(Org.phase), func.count()).where(live_orgs()).group_by(col(Org.phase))
    for phase, count in (await db.exec(query)).all():  # type: ignore[call-overload]
        by_phase.add_metric([phase], count)
    by_version = GaugeMetricFamily(
        "orgplane_instances_by_version",
        "Running org instances by the version their heartbeats report.",
        labels=["version"],
    )
    running = columns(col(Instance.version), func.count()).join(Org, col(Org.id) == Instance.org_id)
    running = running.where(col(Org.phase) == OrgPhase.RUNNING).group_by(col(Instance.version))
    for version, count in (await db.exec(running)).all():  # type: ignore[call-overload]
        by_version.add_metric([version or "unknown"], count)
    oldest = columns(func.min(Instance.last_heartbeat_at)).join(Org, col(Org.id) == Instance.org_id)
    oldest = oldest.where(col(Org.phase) == OrgPhase.RUNNING)
    last = (await db.exec(oldest)).one()[0]  # type: ignore[call-overload]
    lag = GaugeMetricFamily(
        "orgplane_heartbeat_lag_max_seconds",
        "Age of the oldest last heartbeat among running orgs (0 when none runs).",
    )
    lag.add_metric([], (utcnow() - last).total_seconds() if last else 0.0)
    interval = GaugeMetricFamily(
        "orgplane_heartbeat_interval_seconds", "The heartbeat interval instances are given."
    )
    interval.add_metric([], heartbeat_interval)
    return [by_phase, by_version, lag, interval, await _rollout_progress(db)]


async def _rollout_progress(db: AsyncSession) -> Metric:
    """Orgs of active rollouts (running, paused, rolling back) by their step."""
    progress = GaugeMetricFamily(
        "orgplane_rollout_orgs",
        "Orgs of active staged rollouts by their state (queued, upgrading, upgraded, ...).",
        labels=["rollout_state", "state"],
    )
    query = (
        columns(col(Rollout.state), col(RolloutOrg.state), func.count())
        .join(Rollout, col(Rollout.id) == col(RolloutOrg.rollout_id))
        .where(col(Rollout.state).in_(("running", "paused", "rolling_back")))
        .group_by(col(Rollout.state), col(RolloutOrg.state))
    )
    for rollout_state, state, count in (await db.exec(query)).all():  # type: ignore[call-overload]
        progress.add_metric([rollout_state, state], count)
    return progress


def exposition(metrics: ControlPlaneMetrics, fleet: list[Metric]) -> bytes:
    """The text exposition: this process's series (all workers' under multiprocess) and the
    fleet's."""
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_dir():
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(metrics.registry)
    registry.register(_Families(fleet))
    return generate_latest(registry)


def check_metrics_token(request: Request[Any, Any, Any], expected: str) -> None:
    """Refuse a scrape without the metrics token (401); constant-time comparison."""
    presented = bearer_token(request) or ""
    if not expected or not hmac.compare_digest(presented.encode(), expected.encode()):
        raise Unauthenticated(
            "Present the metrics token as a Bearer token.", code="invalid_metrics_token"
        )


@get("/metrics", tags=["metrics"], media_type=MEDIA_TYPE)
async def metrics_endpoint(
    request: Request[Any, Any, Any], runtime: RuntimeDep, db: DB
) -> Response[bytes]:
    """Prometheus text exposition of the control plane and the fleet (metrics token required)."""
    check_metrics_token(request, runtime.settings.server.metrics_token.get_secret_value())
    fleet = await fleet_families(
        db, heartbeat_interval=runtime.settings.provisioning.heartbeat_interval
    )
    body = exposition(request.app.state.metrics, fleet)
    headers = {"Cache-Control": "no-store", "Vary": "Accept-Encoding"}
    if gzip_accepted(request.headers.get("accept-encoding", "")):
        # Prometheus always asks for gzip. Level 1: the largest scrape measured (313 kB) comes to
        # ~12 kB in under a millisecond; higher levels save little more for several times the CPU.
        body = gzip.compress(body, compresslevel=1)
        headers["Content-Encoding"] = "gzip"
    return Response(body, media_type=MEDIA_TYPE, headers=headers)


ROUTES: list[Any] = [metrics_endpoint]
