"""The platform's word for an org where the API describes itself, and for clients.

The OpenAPI document describes each operation with its handler's docstring and its answers and
security schemes with their own descriptions, all reworded with :class:`~control_plane.words.
TenantWords`; ``GET /api/v1/platform/words`` gives the words to clients (the CLI keeps them with
its login).
"""

from __future__ import annotations

from dataclasses import replace
from inspect import cleandoc
from typing import Any

from litestar import get
from litestar.handlers import HTTPRouteHandler

from control_plane.deps import RuntimeDep
from control_plane.words import TenantWords, tenant_words


def describe_operations(routes: Any, words: TenantWords) -> None:
    """Each API operation's description: its handler's docstring, reworded; the descriptions
    of its answers reworded too (idempotent: from the docstring each time)."""
    for route in routes:
        for handler in getattr(route, "route_handlers", ()):
            if not isinstance(handler, HTTPRouteHandler) or not handler.include_in_schema:
                continue
            doc = handler.fn.__doc__
            if doc:
                handler.description = words.reword(cleandoc(doc))
            handler.responses = {
                status: replace(spec, description=words.reword(spec.description))
                for status, spec in (handler.responses or {}).items()
            }


def reworded_schemes(schemes: dict[str, Any], words: TenantWords) -> dict[str, Any]:
    """Security schemes with their descriptions reworded."""
    return {
        name: replace(scheme, description=words.reword(scheme.description or ""))
        for name, scheme in schemes.items()
    }


@get("/api/v1/platform/words", tags=["platform"], sync_to_thread=False)
def platform_words(runtime: RuntimeDep) -> dict[str, str]:
    """The platform's word for an org: singular, plural, placeholder and column header (for
    clients such as the CLI; no credentials needed)."""
    return tenant_words(runtime.settings).as_dict()


ROUTES: list[Any] = [platform_words]
