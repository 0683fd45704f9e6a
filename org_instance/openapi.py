"""The org instance's OpenAPI document (``/api/schema``), truthful about errors and tokens.

Litestar derives operations from the route handlers; :func:`document` adds, through the
handlers' own ``responses`` and ``security``, what it cannot see: every error answer is
``application/problem+json`` with the :class:`~orgplane_wire.problem_schema.Problem` schema,
which the control plane's document uses too, and every route but the probes takes an org token
(``orgToken``) or, for the runner heartbeat, a runner token.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from litestar.handlers import HTTPRouteHandler
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from orgplane_wire.problem_schema import declare_errors, documented_operations, problem_spec

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SCHEMA_PATH = "/api/schema"


PROBES = frozenset({"/healthz", "/readyz"})
RUNNER_HEARTBEAT = "/api/v1/runners/heartbeat"


def openapi_config(version: str) -> OpenAPIConfig:
    """The instance's OpenAPI configuration (document at ``/api/schema/openapi.json``)."""
    return OpenAPIConfig(
        title="orgplane org instance",
        version=version,
        path=SCHEMA_PATH,
        render_plugins=[],
        components=Components(
            security_schemes={
                "orgToken": SecurityScheme(
                    type="http",
                    scheme="bearer",
                    bearer_format="JWT",
                    description="An org token for this org (token exchange at the control "
                    "plane). WebSocket routes also take it as the access_token query parameter.",
                ),
                "runnerToken": SecurityScheme(
                    type="http", scheme="bearer", description="A runner token (ort_...)."
                ),
            }
        ),
    )


def _errors(handler: HTTPRouteHandler, path: str) -> dict[int, Any]:
    errors = {
        400: problem_spec("Invalid input (`code` names the rule), or an invalid Host header."),
        503: problem_spec("The database or Redis cannot be reached."),
    }
    if path in PROBES or path.startswith(SCHEMA_PATH):
        return errors
    errors[401] = problem_spec("No valid token for this org; see WWW-Authenticate.")
    errors[403] = problem_spec("Role too low (role_required) or a quota used up.")
    errors[421] = problem_spec("The Host is not one of this org's names.")
    errors[429] = problem_spec("requests_per_minute used up; retry after `Retry-After`.")
    if "{" in path:
        errors[404] = problem_spec("Absent.")
    if not handler.http_methods <= SAFE_METHODS:
        errors[409] = problem_spec("A state conflict.")
        errors[413] = problem_spec("The body is too large.")
    return errors


def document(routes: Iterable[Any]) -> None:
    """Declare errors and security on the operations of ``routes`` (idempotent)."""
    for handler, route_path in documented_operations(routes):
        path = re.sub(r":[a-z]+}", "}", route_path)
        if path in PROBES or path.startswith(SCHEMA_PATH):
            handler.security = None
        else:
            scheme = "runnerToken" if path == RUNNER_HEARTBEAT else "orgToken"
            handler.security = [{scheme: []}]
        declare_errors(handler, _errors(handler, path))
