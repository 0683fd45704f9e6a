"""The OpenAPI schema of a problem document, which both services' documents declare."""

from __future__ import annotations

from dataclasses import dataclass

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
