"""Errors of the control plane and their RFC 9457 problem+json rendering.

    ProblemError                 one root; every error a client sees is one of these
    ├── BadRequest        400    malformed or invalid input (code names the rule)
    ├── Unauthenticated   401    no or bad credentials
    ├── Forbidden         403    authenticated but not allowed (only where existence is known)
    ├── NotFound          404    absent, or not visible to the caller
    ├── Conflict          409    uniqueness or state conflict
    └── TooManyRequests   429    rate limited; carries Retry-After

A store that cannot be reached (database, Redis) is answered 503 with ``database_unavailable``
or ``redis_unavailable`` and Retry-After, never 500: the client may retry
(:mod:`control_plane.store_errors`; :mod:`control_plane.error_handlers` maps both to Litestar).

Every answer carries a stable machine-readable ``code`` and a ``type`` URI built from it. Stack
traces never reach a client: unexpected exceptions become a bare 500 ``internal_error``.
"""

from __future__ import annotations

import re
from typing import Any

import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, SerializationException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from control_plane.security.challenge import bearer_challenge
from org_instance.errors import client_disconnected, raised_decoding_body

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://orgplane.dev/problems/"

log = structlog.get_logger("orgplane.errors")


class ProblemError(Exception):
    """Root of errors that are answered as problem+json."""

    status: int = 400
    code: str = "bad_request"
    title: str = "Bad request"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if code:
            self.code = code
        if status:
            self.status = status
        self.headers = headers or {}
        self.extra = extra


class BadRequest(ProblemError):
    status, code, title = 400, "bad_request", "Bad request"


class Unauthenticated(ProblemError):
    status, code, title = 401, "unauthenticated", "Authentication required"


class Forbidden(ProblemError):
    status, code, title = 403, "forbidden", "Forbidden"


class NotFound(ProblemError):
    status, code, title = 404, "not_found", "Not found"


class Conflict(ProblemError):
    status, code, title = 409, "conflict", "Conflict"


class TooManyRequests(ProblemError):
    status, code, title = 429, "rate_limited", "Too many requests"

    def __init__(self, detail: str, *, retry_after: int, **extra: Any) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)}, **extra)


_STATUS_CODES = {
    400: ("bad_request", "Bad request"),
    401: ("unauthenticated", "Authentication required"),
    403: ("forbidden", "Forbidden"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    409: ("conflict", "Conflict"),
    413: ("body_too_large", "Request body too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
    429: ("rate_limited", "Too many requests"),
    503: ("unavailable", "Service unavailable"),
}


def problem_response(
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response[dict[str, Any]]:
    """A problem+json response with the stable ``code``."""
    body: dict[str, Any] = {
        "type": TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if instance:
        body["instance"] = instance
    body.update(extra)
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _headers(request: Request[Any, Any, Any], status: int, headers: Any, detail: str) -> Any:
    """``headers``, with the Bearer challenge every 401 carries."""
    if status != 401:
        return headers
    authorization = request.headers.get("authorization", "")
    return bearer_challenge(headers or {}, authorization=authorization, description=detail)


def on_problem(request: Request[Any, Any, Any], exc: ProblemError) -> Response[dict[str, Any]]:
    return problem_response(
        status=exc.status,
        code=exc.code,
        title=exc.title,
        detail=exc.detail,
        instance=path_of(request),
        headers=_headers(request, exc.status, exc.headers, exc.detail),
        **exc.extra,
    )


def path_of(request: Request[Any, Any, Any]) -> str:
    """The request path, from the scope: ``request.url`` also parses the Host header."""
    return str(request.scope["path"])


_NAMED_FIELD = re.compile(r"field `([^`]+)`")


def _field_errors(extra: Any) -> list[dict[str, str]]:
    errors = []
    for item in extra if isinstance(extra, list) else []:
        if isinstance(item, dict):
            field = str(item.get("key") or "body")
            message = str(item.get("message", "invalid"))
            # msgspec reports missing and unknown fields against the whole body ("data").
            named = _NAMED_FIELD.search(message)
            if field == "data" and named:
                field = named.group(1)
            errors.append({"field": field, "message": message})
    return errors


def on_validation(
    request: Request[Any, Any, Any], exc: ValidationException
) -> Response[dict[str, Any]]:
    errors = _field_errors(exc.extra)
    detail = str(exc.detail)
    if "JSON" in detail or "decode" in detail.lower() or "malformed" in detail.lower():
        code, detail = "malformed_body", "The request body is not valid JSON."
    else:
        code = "validation_error"
        named = ", ".join(e["field"] for e in errors)
        detail = f"Invalid value for: {named}." if named else "The request is invalid."
    return problem_response(
        status=400,
        code=code,
        title="Invalid request",
        detail=detail,
        instance=path_of(request),
        errors=errors,
    )


def on_undecodable(
    request: Request[Any, Any, Any], exc: SerializationException
) -> Response[dict[str, Any]]:
    """A body a handler decoded itself (``await request.json()``) that is not JSON."""
    return problem_response(
        status=400,
        code="malformed_body",
        title="Invalid request",
        detail="The request body could not be decoded (not UTF-8 or not valid JSON).",
        instance=path_of(request),
    )


def on_undecodable_text(
    request: Request[Any, Any, Any], exc: UnicodeDecodeError
) -> Response[dict[str, Any]]:
    if not raised_decoding_body(exc):
        return on_unexpected(request, exc)
    return on_undecodable(request, SerializationException("not UTF-8"))


def on_http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    status = exc.status_code
    if client_disconnected(exc):  # nobody to answer; a 4xx in the metrics, not an error of ours
        log.info("client disconnected before its body arrived", path=path_of(request))
        return problem_response(
            status=400,
            code="client_disconnected",
            title="Client disconnected",
            detail="The client closed the connection before sending its whole body.",
            instance=path_of(request),
        )
    if status >= 500:
        return on_unexpected(request, exc)
    if isinstance(exc.__cause__, SerializationException):  # the body did not decode
        return on_undecodable(request, exc.__cause__)
    code, title = _STATUS_CODES.get(status, ("error", "Error"))
    detail = exc.detail if exc.detail and exc.detail != title else title
    return problem_response(
        status=status,
        code=code,
        title=title,
        detail=detail,
        instance=path_of(request),
        headers=_headers(request, status, exc.headers, detail),
    )


def on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    log.exception("unhandled error", path=path_of(request), exc_type=type(exc).__name__)
    return problem_response(
        status=HTTP_500_INTERNAL_SERVER_ERROR,
        code="internal_error",
        title="Internal server error",
        detail="The server could not complete the request.",
        instance=path_of(request),
    )
