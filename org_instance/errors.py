"""Errors of the org instance and their RFC 9457 problem+json rendering.

    ProblemError                 one root; every error a client sees is one of these
    ├── BadRequest        400    malformed or invalid input (code names the rule)
    ├── Unauthorized      401    no token, or not a valid token for this org (invalid_token)
    ├── Forbidden         403    role too low (role_required) or a quota used up (quota_exceeded)
    ├── NotFound          404    absent
    ├── Conflict          409    state conflict
    ├── PayloadTooLarge   413    body above the upload ceiling
    ├── Misdirected       421    Host is not one of this org's names (misdirected_request)
    ├── TooManyRequests   429    requests_per_minute used up; carries Retry-After
    └── Unavailable       503    database or Redis not reachable

The same shape as the control plane's problems (``code``, ``type`` built from it), written
again here because the instance never imports the control plane.
"""

from __future__ import annotations

from typing import Any

import msgspec
import structlog
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    InternalServerException,
    SerializationException,
    ValidationException,
)
from litestar.types import HTTPResponseStartEvent, Send

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://orgplane.dev/problems/"

log = structlog.get_logger("orgplane.instance.errors")


class ProblemError(Exception):
    """Root of errors answered as problem+json."""

    status: int = 400
    code: str = "bad_request"
    title: str = "Bad request"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if code:
            self.code = code
        self.headers = headers or {}
        self.extra = extra


class BadRequest(ProblemError):
    status, code, title = 400, "bad_request", "Bad request"


class Unauthorized(ProblemError):
    """401 with an RFC 6750 §3 challenge: ``error="invalid_token"`` when a token was presented,
    a bare ``Bearer`` when none was (§3.1: no error code for a request without credentials)."""

    status, code, title = 401, "invalid_token", "Authentication required"

    def __init__(
        self, detail: str, *, code: str | None = None, presented: bool = True, **extra: Any
    ) -> None:
        challenge = 'Bearer error="invalid_token"' if presented else "Bearer"
        super().__init__(detail, code=code, headers={"WWW-Authenticate": challenge}, **extra)


class Forbidden(ProblemError):
    status, code, title = 403, "forbidden", "Forbidden"


class NotFound(ProblemError):
    status, code, title = 404, "not_found", "Not found"


class Conflict(ProblemError):
    status, code, title = 409, "conflict", "Conflict"


class PayloadTooLarge(ProblemError):
    status, code, title = 413, "body_too_large", "Request body too large"


class Misdirected(ProblemError):
    status, code, title = 421, "misdirected_request", "Misdirected request"


class TooManyRequests(ProblemError):
    status, code, title = 429, "rate_limited", "Too many requests"

    def __init__(self, detail: str, *, retry_after: int, **extra: Any) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(retry_after, 1))}, **extra)


class Unavailable(ProblemError):
    status, code, title = 503, "unavailable", "Service unavailable"


def problem_body(*, status: int, code: str, title: str, detail: str, **extra: Any) -> bytes:
    """The JSON bytes of a problem document (also used by pure-ASGI middleware)."""
    body = {"type": TYPE_BASE + code, "title": title, "status": status, "detail": detail}
    body.update(code=code, **extra)
    return msgspec.json.encode(body)


async def send_problem(
    send: Send,
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    headers: tuple[tuple[bytes, bytes], ...] = (),
) -> None:
    """Answer a problem document straight over ASGI (for pure-ASGI middleware)."""
    body = problem_body(status=status, code=code, title=title, detail=detail)
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", PROBLEM_JSON.encode()),
            (b"content-length", str(len(body)).encode()),
            *headers,
        ],
    }
    await send(start)
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _respond(
    request: Request[Any, Any, Any], *, status: int, code: str, title: str, detail: str, **kw: Any
) -> Response[bytes]:
    headers = kw.pop("headers", None)
    body = problem_body(
        status=status, code=code, title=title, detail=detail, instance=request.scope["path"], **kw
    )
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _on_problem(request: Request[Any, Any, Any], exc: ProblemError) -> Response[bytes]:
    return _respond(
        request,
        status=exc.status,
        code=exc.code,
        title=exc.title,
        detail=exc.detail,
        headers=exc.headers,
        **exc.extra,
    )


def _on_validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[bytes]:
    errors = [
        {"field": str(item.get("key") or "body"), "message": str(item.get("message", "invalid"))}
        for item in (exc.extra if isinstance(exc.extra, list) else [])
        if isinstance(item, dict)
    ]
    text = str(exc.detail).lower()
    if "json" in text or "decode" in text or "malformed" in text:
        code, detail = "malformed_body", "The request body is not valid JSON."
    else:
        named = ", ".join(e["field"] for e in errors)
        code, detail = (
            "validation_error",
            (f"Invalid value for: {named}." if named else "The request is invalid."),
        )
    return _respond(
        request, status=400, code=code, title="Invalid request", detail=detail, errors=errors
    )


_HTTP_CODES = {
    400: ("bad_request", "Bad request"),
    401: ("invalid_token", "Authentication required"),
    403: ("forbidden", "Forbidden"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    413: ("body_too_large", "Request body too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
}


#: Where Litestar decodes request bodies (forms and multipart, also in its CSRF middleware,
#: which builds its own ``Request``, so :class:`BoundedJSONRequest` cannot cover it).
_BODY_DECODERS = ("litestar._multipart", "litestar.connection", "litestar._kwargs")


def raised_decoding_body(exc: BaseException) -> bool:
    """True when ``exc`` (a ``UnicodeDecodeError``) came from decoding the request body: bad
    input to answer 400, not a bug of ours to answer 500."""
    frame = exc.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    module = str(frame.tb_frame.f_globals.get("__name__", "")) if frame else ""
    return module.startswith(_BODY_DECODERS)


#: What Litestar's ``Request.stream()`` raises (as a 500) when the client hangs up before its
#: whole body has arrived; it has no exception class of its own, so the message tells.
_CLIENT_GONE = "client disconnected prematurely"


def client_disconnected(exc: BaseException) -> bool:
    """True when ``exc`` says the client went away while its body was being read: nothing of
    ours failed and nobody is left to answer (logged as such, not as an unhandled error)."""
    return isinstance(exc, InternalServerException) and exc.detail == _CLIENT_GONE


def _on_undecodable(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    """A body that did not decode (Litestar raises it wrapped in a 400, or bare)."""
    return _respond(
        request,
        status=400,
        code="malformed_body",
        title="Invalid request",
        detail="The request body is not valid JSON.",
    )


def _on_undecodable_text(
    request: Request[Any, Any, Any], exc: UnicodeDecodeError
) -> Response[bytes]:
    return (
        _on_undecodable(request, exc) if raised_decoding_body(exc) else _on_unexpected(request, exc)
    )


def _on_http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    if client_disconnected(exc):
        log.info("client disconnected before its body arrived", path=request.scope["path"])
        return _respond(
            request,
            status=400,
            code="client_disconnected",
            title="Client disconnected",
            detail="The client closed the connection before sending its whole body.",
        )
    if exc.status_code >= 500:
        return _on_unexpected(request, exc)
    if isinstance(exc.__cause__, SerializationException):
        return _on_undecodable(request, exc)
    code, title = _HTTP_CODES.get(exc.status_code, ("error", "Error"))
    return _respond(
        request, status=exc.status_code, code=code, title=title, detail=title, headers=exc.headers
    )


def _on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.error(
        "unhandled error", path=request.scope["path"], exc_type=type(exc).__name__, exc_info=exc
    )
    return _respond(
        request,
        status=500,
        code="internal_error",
        title="Internal server error",
        detail="The server could not complete the request.",
    )


EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {
    ProblemError: _on_problem,
    ValidationException: _on_validation,
    HTTPException: _on_http,
    SerializationException: _on_undecodable,
    UnicodeDecodeError: _on_undecodable_text,
    Exception: _on_unexpected,
}
