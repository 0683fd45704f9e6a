"""Prometheus metrics of an org instance, served at ``GET /metrics`` on the instance's own port.

Who may read them: whoever reaches the instance's port directly, which is the platform's own
network (the control plane, Prometheus). The org's hostnames reach the instance only through
Traefik, which adds ``X-Forwarded-For`` to every request it forwards (and replaces one a client
sent), so a scrape that carries a forwarding header came through the proxy and is answered 404
as if the route did not exist. Series carry no org id: Prometheus adds ``org_id``, ``org_slug``,
``plan`` and ``version`` from the control plane's service discovery
(``GET /api/v1/routing/prometheus``).

Labels are bounded: the route *template*, never a raw path, and no user id. The registry is the
app's own (no module-wide state); an instance is one process, so no multiprocess mode.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from litestar import Request, Response, get
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from orgplane_wire.http_metrics import MEDIA_TYPE, observe_http
from orgplane_wire.problems import NotFound

#: Seconds. Fewer buckets than the control plane's: every bucket is a series per route.
BUCKETS = (0.005, 0.025, 0.1, 0.5, 2.5, 10.0)
#: Headers a reverse proxy adds; a request with one of them did not come from the platform.
FORWARDING_HEADERS = (b"x-forwarded-for", b"x-forwarded-host", b"x-real-ip", b"forwarded")


class _SQLiteSize(Collector):
    """The database's size on disk (main file and WAL), read at scrape time."""

    def __init__(self, database: Path) -> None:
        self.files = [database, database.with_name(database.name + "-wal")]

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "orgplane_instance_sqlite_bytes",
            "Size of the instance's SQLite database on disk, by file (main or wal).",
            labels=["file"],
        )
        for kind, path in zip(("main", "wal"), self.files, strict=True):
            try:
                family.add_metric([kind], path.stat().st_size)
            except OSError:
                family.add_metric([kind], 0)
        yield family


class InstanceMetrics:
    """The series of one instance app."""

    def __init__(self, database: Path) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self.http_duration = Histogram(
            "orgplane_instance_http_request_duration_seconds",
            "Instance HTTP requests by method, route template and status code.",
            ["method", "route", "status"],
            buckets=BUCKETS,
            registry=reg,
        )
        self.websocket_clients = Gauge(
            "orgplane_instance_websocket_clients", "WebSocket clients connected now.", registry=reg
        )
        self.redis_errors = Counter(
            "orgplane_instance_redis_errors",
            "Redis operations that failed, by operation (heartbeat, revocations, ping).",
            ["operation"],
            registry=reg,
        )
        reg.register(_SQLiteSize(database))

    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Observe one answered HTTP request's latency."""
        self.http_duration.labels(method, route, str(status)).observe(seconds)

    def redis_error(self, operation: str) -> None:
        """Count one failed Redis operation."""
        self.redis_errors.labels(operation).inc()


class MetricsMiddleware:
    """Observes each routed request under its route template and counts WebSocket clients.

    Litestar runs app middleware after routing, so ``path_template`` is known and unrouted
    requests never reach here."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        metrics: InstanceMetrics = scope["app"].state.metrics
        if scope["type"] == ScopeType.WEBSOCKET:
            metrics.websocket_clients.inc()
            try:
                await self.app(scope, receive, send)
            finally:
                metrics.websocket_clients.dec()
            return
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        await observe_http(self.app, scope, receive, send, observe=metrics.http_request)


def forwarded(scope: Scope) -> bool:
    """Whether the request came through a reverse proxy."""
    return any(name in FORWARDING_HEADERS for name, _ in scope["headers"])


@get("/metrics", include_in_schema=False, sync_to_thread=False)
def metrics_endpoint(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Prometheus text exposition; only on the instance's own port (see the module docstring)."""
    if forwarded(request.scope):
        raise NotFound("No such route.")
    metrics: InstanceMetrics = request.app.state.metrics
    return Response(
        generate_latest(metrics.registry),
        media_type=MEDIA_TYPE,
        headers={"Cache-Control": "no-store"},
    )
