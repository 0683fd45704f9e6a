"""The errors both services answer, as RFC 9457 problem+json documents.

    ProblemError                 one root; every error a client sees is one of these
    ├── BadRequest        400    malformed or invalid input (code names the rule)
    ├── Unauthenticated   401    no or bad credentials (the control plane adds its challenge)
    │   └── Unauthorized  401    not a valid org token (invalid_token), with its own challenge
    ├── Forbidden         403    authenticated but not allowed (only where existence is known)
    ├── NotFound          404    absent, or not visible to the caller
    ├── Conflict          409    uniqueness or state conflict
    ├── PayloadTooLarge   413    body above the ceiling
    ├── Misdirected       421    Host is not one of this server's names (misdirected_request)
    ├── TooManyRequests   429    rate limited; carries Retry-After
    └── Unavailable       503    a store cannot be reached

Every answer carries a stable machine-readable ``code`` and a ``type`` URI built from it
(:func:`problem_document`). Pure-ASGI middleware and the server protocols answer the same
document as bytes (:func:`problem_body`, :func:`send_problem`); Litestar apps install
:mod:`orgplane_wire.problem_handlers`.
"""

from __future__ import annotations

from typing import Any

from litestar.exceptions import InternalServerException
from litestar.serialization import encode_json
from litestar.types import HTTPResponseStartEvent, Send

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://orgplane.dev/problems/"


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


class Unauthorized(Unauthenticated):
    """401 with an RFC 6750 §3 challenge: ``error="invalid_token"`` when a token was presented,
    a bare ``Bearer`` when none was (§3.1: no error code for a request without credentials)."""

    code = "invalid_token"

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


def problem_document(
    *, status: int, code: str, title: str, detail: str, instance: str | None = None, **extra: Any
) -> dict[str, Any]:
    """A problem document: the RFC 9457 members, our ``code``, then any members of the code."""
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
    return body


def problem_body(*, status: int, code: str, title: str, detail: str, **extra: Any) -> bytes:
    """The JSON bytes of a problem document (for pure-ASGI middleware and server protocols)."""
    return encode_json(
        problem_document(status=status, code=code, title=title, detail=detail, **extra)
    )


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


#: Where Litestar decodes request bodies (forms and multipart, also in its CSRF middleware,
#: which builds its own ``Request``, so ``BoundedJSONRequest`` cannot cover it).
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
