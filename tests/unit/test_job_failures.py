"""Background jobs log a store outage as a warning and anything else with its traceback.

Seen before: with PostgreSQL stopped (tests/proof/test_store_outages.py) the webhook worker
logged "webhook round failed" with a traceback every second, and a reconcile whose Redis
connection dropped logged "reconcile failed" with one; the session's log scan failed the run on
both, though each job simply tries again on its next round.
"""

from __future__ import annotations

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import InterfaceError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from structlog.testing import capture_logs

from control_plane.store_errors import log_job_failure, store_outage


def test_outages_are_told_by_their_store() -> None:
    assert store_outage(RedisConnectionError("Connection closed by server.")) == "redis"
    assert store_outage(RedisTimeoutError()) == "redis"
    assert store_outage(InterfaceError("SELECT 1", {}, ConnectionRefusedError())) == "database"
    assert store_outage(PoolTimeout()) == "database"
    assert store_outage(ConnectionRefusedError()) is None  # not raised by a database driver
    assert store_outage(ValueError("a bug")) is None


def test_an_outage_is_a_warning_without_a_traceback_and_a_bug_keeps_it() -> None:
    with capture_logs() as logs:
        log_job_failure("webhook round failed", RedisConnectionError("closed"), org_id="o1")
        log_job_failure("webhook round failed", ValueError("a bug"))
    outage, bug = logs
    assert outage["log_level"] == "warning"
    assert outage["store_unavailable"] == "redis"
    assert outage["org_id"] == "o1"
    assert "exc_info" not in outage
    assert bug["log_level"] == "error"
    assert isinstance(bug["exc_info"], ValueError)
