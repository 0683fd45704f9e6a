"""The OpenAPI schema of a problem document, which both services' documents declare on every
operation's error answers."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec

from orgplane_wire.problems import PROBLEM_JSON


@dataclass
class FieldError:
    """One invalid input of a ``validation_error``."""

    field: str
    message: str


@dataclass
class Problem:
    """An error answer (RFC 9457). Some codes add members (``field``, ``limit``, ...)."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    instance: str | None = None
    field: str | None = None
    errors: list[FieldError] | None = None


def problem_spec(description: str) -> ResponseSpec:
    """An error response declared as problem+json."""
    return ResponseSpec(
        data_container=Problem,
        media_type=PROBLEM_JSON,
        description=description,
        generate_examples=False,
    )


def documented_operations(routes: Iterable[Any]) -> Iterator[tuple[HTTPRouteHandler, str]]:
    """Each HTTP handler of ``routes`` that is in the OpenAPI document, with its route's path."""
    for route in routes:
        for handler in getattr(route, "route_handlers", ()):
            if isinstance(handler, HTTPRouteHandler) and handler.include_in_schema:
                yield handler, route.path


def declare_errors(handler: HTTPRouteHandler, errors: dict[int, ResponseSpec]) -> None:
    """Make ``errors`` the handler's error answers, keeping the success answers it declares
    (idempotent)."""
    handler.responses = {
        **errors,
        **{k: v for k, v in (handler.responses or {}).items() if k < 400},
    }
