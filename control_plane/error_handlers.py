"""The control plane's exception handlers, by exception type, for Litestar's
``exception_handlers``: problems and HTTP errors answered as :mod:`orgplane_wire.problem_handlers`
does for both services (with the control plane's Bearer challenge on every 401), store failures
by :mod:`control_plane.store_errors`.

A store that cannot be reached (database, Redis) is answered 503 with ``database_unavailable``
or ``redis_unavailable`` and Retry-After, never 500: the client may retry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from control_plane.security.challenge import bearer_challenge
from control_plane.store_errors import on_database, on_os_error, on_pool_timeout, on_redis
from orgplane_wire.problem_handlers import AnyRequest, ProblemAnswers


def _challenge(request: AnyRequest, detail: str, headers: Mapping[str, str]) -> Mapping[str, str]:
    """The Bearer challenge every control-plane 401 carries."""
    authorization = request.headers.get("authorization", "")
    return bearer_challenge(headers, authorization=authorization, description=detail)


ANSWERS = ProblemAnswers(
    undecodable_detail="The request body could not be decoded (not UTF-8 or not valid JSON).",
    challenge=_challenge,
)

EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {
    **ANSWERS.handlers(),
    DBAPIError: on_database,
    PoolTimeout: on_pool_timeout,
    OSError: on_os_error,
    RedisConnectionError: on_redis,
    RedisTimeoutError: on_redis,
}
