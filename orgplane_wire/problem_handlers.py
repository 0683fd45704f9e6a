"""Litestar exception handlers that answer every error as a problem document.

Both services install the handlers of one :class:`ProblemAnswers`; what differs between them is
its fields: the code of a bare 401 (``unauthenticated`` on the control plane, ``invalid_token``
on an instance), whether a Litestar error's own detail is told, and the control plane's
``WWW-Authenticate`` challenge. Stack traces never reach a client: an unexpected exception is
logged and answered as a bare 500 ``internal_error``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, SerializationException, ValidationException

from orgplane_wire.problems import (
    PROBLEM_JSON,
    ProblemError,
    client_disconnected,
    problem_document,
    raised_decoding_body,
)

log = structlog.get_logger("orgplane.errors")

AnyRequest = Request[Any, Any, Any]
#: Adds a 401's challenge: (request, detail, headers) -> headers.
Challenge = Callable[[AnyRequest, str, Mapping[str, str]], Mapping[str, str]]

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
_NAMED_FIELD = re.compile(r"field `([^`]+)`")


def path_of(request: AnyRequest) -> str:
    """The request path, from the scope: ``request.url`` also parses the Host header."""
    return str(request.scope["path"])


def problem_response(
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    instance: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> Response[dict[str, Any]]:
    """A problem+json response with the stable ``code``."""
    body = problem_document(
        status=status, code=code, title=title, detail=detail, instance=instance, **extra
    )
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def answer_unexpected(request: AnyRequest, exc: Exception) -> Response[dict[str, Any]]:
    """Log an exception nobody expected, with its traceback, and answer a bare 500."""
    log.error("unhandled error", path=path_of(request), exc_type=type(exc).__name__, exc_info=exc)
    return problem_response(
        status=500,
        code="internal_error",
        title="Internal server error",
        detail="The server could not complete the request.",
        instance=path_of(request),
    )


@dataclass(frozen=True)
class ProblemAnswers:
    """How one service answers errors; :meth:`handlers` is Litestar's ``exception_handlers``."""

    #: The code of a 401 Litestar raises itself.
    unauthenticated_code: str = "unauthenticated"
    #: Whether a Litestar error's own detail is told (else its title is).
    tell_http_detail: bool = True
    #: The detail of a body that did not decode.
    undecodable_detail: str = "The request body is not valid JSON."
    #: Whether a field msgspec names only in its message ("data" missing ``field `x```) is named.
    name_fields: bool = True
    #: What every 401 answer gets added to its headers, if anything.
    challenge: Challenge | None = None

    def handlers(self) -> dict[type[Exception] | int, Any]:
        """Handlers by exception type (the most specific one applies)."""
        return {
            ProblemError: self.on_problem,
            ValidationException: self.on_validation,
            HTTPException: self.on_http,
            SerializationException: self.on_undecodable,
            UnicodeDecodeError: self.on_undecodable_text,
            Exception: answer_unexpected,
        }

    def _headers(
        self, request: AnyRequest, status: int, headers: Mapping[str, str] | None, detail: str
    ) -> Mapping[str, str] | None:
        if status != 401 or self.challenge is None:
            return headers
        return self.challenge(request, detail, headers or {})

    def on_problem(self, request: AnyRequest, exc: ProblemError) -> Response[dict[str, Any]]:
        return problem_response(
            status=exc.status,
            code=exc.code,
            title=exc.title,
            detail=exc.detail,
            instance=path_of(request),
            headers=self._headers(request, exc.status, exc.headers, exc.detail),
            **exc.extra,
        )

    def _field_errors(self, extra: Any) -> list[dict[str, str]]:
        errors = []
        for item in extra if isinstance(extra, list) else []:
            if isinstance(item, dict):
                field = str(item.get("key") or "body")
                message = str(item.get("message", "invalid"))
                # msgspec reports missing and unknown fields against the whole body ("data").
                named = _NAMED_FIELD.search(message) if self.name_fields else None
                if field == "data" and named:
                    field = named.group(1)
                errors.append({"field": field, "message": message})
        return errors

    def on_validation(
        self, request: AnyRequest, exc: ValidationException
    ) -> Response[dict[str, Any]]:
        errors = self._field_errors(exc.extra)
        text = str(exc.detail).lower()
        if "json" in text or "decode" in text or "malformed" in text:
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

    def on_undecodable(self, request: AnyRequest, exc: Exception) -> Response[dict[str, Any]]:
        """A body that did not decode (Litestar raises it wrapped in a 400, or bare)."""
        return problem_response(
            status=400,
            code="malformed_body",
            title="Invalid request",
            detail=self.undecodable_detail,
            instance=path_of(request),
        )

    def on_undecodable_text(
        self, request: AnyRequest, exc: UnicodeDecodeError
    ) -> Response[dict[str, Any]]:
        if not raised_decoding_body(exc):
            return answer_unexpected(request, exc)
        return self.on_undecodable(request, exc)

    def on_http(self, request: AnyRequest, exc: HTTPException) -> Response[dict[str, Any]]:
        status = exc.status_code
        if client_disconnected(exc):  # nobody to answer; a 4xx in the metrics, not our error
            log.info("client disconnected before its body arrived", path=path_of(request))
            return problem_response(
                status=400,
                code="client_disconnected",
                title="Client disconnected",
                detail="The client closed the connection before sending its whole body.",
                instance=path_of(request),
            )
        if status >= 500:
            return answer_unexpected(request, exc)
        if isinstance(exc.__cause__, SerializationException):  # the body did not decode
            return self.on_undecodable(request, exc.__cause__)
        code, title = _STATUS_CODES.get(status, ("error", "Error"))
        if status == 401:
            code = self.unauthenticated_code
        told = self.tell_http_detail and exc.detail and exc.detail != title
        detail = exc.detail if told else title
        return problem_response(
            status=status,
            code=code,
            title=title,
            detail=detail,
            instance=path_of(request),
            headers=self._headers(request, status, exc.headers, detail),
        )
