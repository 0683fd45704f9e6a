"""The process series of the control plane (HTTP latency, token requests, reconciler passes,
backups): counted by the process that did the work, in a registry of its own per app.

What a scrape costs grows with the route templates and statuses a replica has seen, so the HTTP
series are shaped for it (``benchmarks/bench_metrics_sd.py``, docs/performance.md): latency is a
histogram by method and route only, with nine buckets, and the status code is a label of a plain
counter beside it (one sample per route and status instead of a histogram's fourteen). The
``_created`` samples are not exposed (:func:`prometheus_client.disable_created_metrics`):
Prometheus 2 ignores them in the text format, and they were one sample in four.

They live apart from ``control_plane.metrics`` (the ``/metrics`` endpoint, the fleet series
read from the database, the HTTP middleware) so that the runtime, at the bottom of the layers,
can hold them: the reconciler and the backups count through ``runtime.metrics``.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)

#: Seconds; from a cached JWKS answer (~1 ms) to a slow backup download. Nine buckets: every one
#: costs a sample per method and route template on each scrape.
LATENCY_BUCKETS = (0.005, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
PASS_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
TOKEN_GRANTS = frozenset(
    {"refresh_token", "urn:ietf:params:oauth:grant-type:token-exchange", "authorization_code"}
)


class ControlPlaneMetrics:
    """The process series of one control-plane app."""

    def __init__(self) -> None:
        # Process-wide in prometheus-client; the control plane exposes no `_created` series.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self.http_duration = Histogram(
            "orgplane_http_request_duration_seconds",
            "Control-plane HTTP request latency by method and route template.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.http_requests = Counter(
            "orgplane_http_requests",
            "Control-plane HTTP requests by method, route template and status code.",
            ["method", "route", "status"],
            registry=reg,
        )
        self.token_requests = Counter(
            "orgplane_token_requests",
            "Token endpoint requests by grant, outcome (issued or refused) and refusal reason.",
            ["grant", "outcome", "reason"],
            registry=reg,
        )
        self.reconcile_pass = Histogram(
            "orgplane_reconciler_pass_duration_seconds",
            "Reconciler passes of this process by kind (full or quick).",
            ["kind"],
            buckets=PASS_BUCKETS,
            registry=reg,
        )
        self.reconcile_queue = Gauge(
            "orgplane_reconciler_queue_depth",
            "Orgs the last reconciler pass selected for work.",
            registry=reg,
            multiprocess_mode="mostrecent",
        )
        self.backups = Counter(
            "orgplane_backups",
            "Backups taken by kind (manual, scheduled, pre_restore) and outcome (ok or failed).",
            ["kind", "outcome"],
            registry=reg,
        )

    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered HTTP request and observe its latency."""
        self.http_duration.labels(method, route).observe(seconds)
        self.http_requests.labels(method, route, str(status)).inc()

    def token_request(self, grant: str, *, refused: str | None = None) -> None:
        """Count one token endpoint answer; ``refused`` is the OAuth error code of a refusal."""
        shown = grant if grant in TOKEN_GRANTS else "other"
        if shown.startswith("urn:"):
            shown = "token_exchange"
        outcome = "refused" if refused else "issued"
        self.token_requests.labels(shown, outcome, refused or "").inc()
