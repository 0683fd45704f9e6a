"""Feature gates: routes of a feature answer 403 ``feature_disabled`` when the org token lacks it.

The control plane evaluates the features catalogue at token exchange and puts the enabled keys
in the org token's ``features`` claim; the instance trusts the verified token, so a changed rule
reaches an instance with the next token, without a restart.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from litestar import Router
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.types import ControllerRouterHandler, Guard

from org_instance.auth import Member
from orgplane_wire.problems import Forbidden


def requires_feature(key: str) -> Guard:
    """A guard refusing callers whose org token does not carry feature ``key``."""

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        member = connection.scope.get("user")
        features = member.claims.get("features", []) if isinstance(member, Member) else []
        if key not in features:
            raise Forbidden(
                f"The feature {key!r} is not enabled for this org.",
                code="feature_disabled",
                feature=key,
            )

    return guard


def gated(key: str, handlers: Sequence[ControllerRouterHandler]) -> Router:
    """``handlers`` behind the gate of feature ``key`` (their paths unchanged)."""
    return Router(path="/", route_handlers=list(handlers), guards=[requires_feature(key)])
