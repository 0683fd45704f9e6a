"""The process series of the control plane (HTTP latency, token requests, reconciler passes,
backups): counted by the process that did the work, in a registry of its own per app.

They live apart from ``control_plane.metrics`` (the ``/metrics`` endpoint, the fleet series
read from the database, the HTTP middleware) so that the runtime, at the bottom of the layers,
can hold them: the reconciler and the backups count through ``runtime.metrics``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

#: Seconds; from a cached JWKS answer (~1 ms) to a slow backup download.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
PASS_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
TOKEN_GRANTS = frozenset(
    {"refresh_token", "urn:ietf:params:oauth:grant-type:token-exchange", "authorization_code"}
)


class ControlPlaneMetrics:
    """The process series of one control-plane app."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self.http_duration = Histogram(
            "orgplane_http_request_duration_seconds",
            "Control-plane HTTP requests by method, route template and status code.",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
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

    def token_request(self, grant: str, *, refused: str | None = None) -> None:
        """Count one token endpoint answer; ``refused`` is the OAuth error code of a refusal."""
        shown = grant if grant in TOKEN_GRANTS else "other"
        if shown.startswith("urn:"):
            shown = "token_exchange"
        outcome = "refused" if refused else "issued"
        self.token_requests.labels(shown, outcome, refused or "").inc()
