"""The control plane's exception handlers, by exception type, for Litestar's
``exception_handlers`` (problems and HTTP errors in :mod:`control_plane.errors`, store failures
in :mod:`control_plane.store_errors`)."""

from __future__ import annotations

from typing import Any

from litestar.exceptions import HTTPException, SerializationException, ValidationException
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from control_plane.errors import (
    ProblemError,
    on_http,
    on_problem,
    on_undecodable,
    on_undecodable_text,
    on_unexpected,
    on_validation,
)
from control_plane.store_errors import on_database, on_os_error, on_pool_timeout, on_redis

EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {
    ProblemError: on_problem,
    ValidationException: on_validation,
    HTTPException: on_http,
    SerializationException: on_undecodable,
    UnicodeDecodeError: on_undecodable_text,
    DBAPIError: on_database,
    PoolTimeout: on_pool_timeout,
    OSError: on_os_error,
    RedisConnectionError: on_redis,
    RedisTimeoutError: on_redis,
    Exception: on_unexpected,
}
