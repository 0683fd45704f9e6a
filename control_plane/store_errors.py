"""Store failures answered 503 (the client may retry), and text the database cannot store.

A database or Redis that cannot be reached is answered 503 ``database_unavailable`` or
``redis_unavailable`` with Retry-After, never 500; other database errors are unexpected.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, InterfaceError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from orgplane_wire.problem_handlers import answer_unexpected, log, path_of, problem_response

#: SQLSTATEs of text the database cannot store (PostgreSQL refuses NUL characters): bad input.
_UNSTORABLE_TEXT = frozenset({"22021", "22P05"})


#: Seconds a client is asked to wait after a 503 for a store that cannot be reached.
UNAVAILABLE_RETRY_AFTER = 5
#: SQLSTATEs of a server shutting down or starting up (class 08 is any connection failure).
_SERVER_GOING_OR_COMING = frozenset({"57P01", "57P02", "57P03"})


def _unavailable(
    request: Request[Any, Any, Any], exc: Exception, *, code: str, what: str
) -> Response[dict[str, Any]]:
    log.warning("store unavailable", code=code, path=path_of(request), exc_type=type(exc).__name__)
    return problem_response(
        status=503,
        code=code,
        title="Service unavailable",
        detail=f"{what} cannot be reached right now. Try again shortly.",
        instance=path_of(request),
        headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER)},
    )


def _database_unreachable(exc: DBAPIError) -> bool:
    state = str(getattr(exc.orig, "sqlstate", "") or "")
    return (
        exc.connection_invalidated
        or isinstance(exc, InterfaceError)
        or state.startswith("08")
        or state in _SERVER_GOING_OR_COMING
    )


def _raised_by_database_driver(exc: BaseException) -> bool:
    """asyncpg reports a refused or reset connection as a bare OSError, which SQLAlchemy does
    not wrap: tell it from other OSErrors by where it was raised."""
    frame = exc.__traceback__
    while frame is not None:
        module = str(frame.tb_frame.f_globals.get("__name__", ""))
        if module.startswith(("asyncpg", "sqlalchemy")):
            return True
        frame = frame.tb_next
    return False


def store_outage(exc: BaseException) -> str | None:
    """The store an exception says cannot be reached (``"database"``, ``"redis"``), else None.

    Background jobs (reconciler, webhook worker) log an outage as a warning, without a
    traceback, and try again on their next round: it is the platform's weather, not a bug.
    """
    if isinstance(exc, PoolTimeout) or (isinstance(exc, DBAPIError) and _database_unreachable(exc)):
        return "database"
    if isinstance(exc, OSError) and _raised_by_database_driver(exc):
        return "database"
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        return "redis"
    return None


def log_job_failure(what: str, exc: BaseException, **context: Any) -> None:
    """Log a background job's failure: a store outage as a warning naming the store, anything
    else with its traceback (an error of ours, which the session's log scan fails on)."""
    store = store_outage(exc)
    if store is None:
        log.error(what, exc_info=exc, **context)
    else:
        log.warning(what, store_unavailable=store, exc_type=type(exc).__name__, **context)


def on_os_error(request: Request[Any, Any, Any], exc: OSError) -> Response[dict[str, Any]]:
    if _raised_by_database_driver(exc):
        return _unavailable(request, exc, code="database_unavailable", what="The database")
    return answer_unexpected(request, exc)


def on_pool_timeout(request: Request[Any, Any, Any], exc: PoolTimeout) -> Response[dict[str, Any]]:
    return _unavailable(request, exc, code="database_unavailable", what="The database")


def on_redis(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    return _unavailable(request, exc, code="redis_unavailable", what="Redis")


def on_database(request: Request[Any, Any, Any], exc: DBAPIError) -> Response[dict[str, Any]]:
    if _database_unreachable(exc):
        return _unavailable(request, exc, code="database_unavailable", what="The database")
    if getattr(exc.orig, "sqlstate", None) in _UNSTORABLE_TEXT:
        return problem_response(
            status=400,
            code="invalid_characters",
            title="Invalid request",
            detail="The request holds characters that cannot be stored (such as NUL).",
            instance=path_of(request),
        )
    return answer_unexpected(request, exc)
