"""Every org-scoped route names its org ``{org_ref}`` and gets it from the ``access`` dependency
(control_plane/orgs/guards.py), which checks the role the route declares before the handler."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from litestar.routes import HTTPRoute
from litestar.testing import AsyncTestClient

from control_plane.app import create_app
from control_plane.orgs.guards import ORG_PARAM, required_role
from tests.support.api import assert_problem
from tests.support.orgs import add_member, make_org, user

#: Addressed by id on purpose: a deleted org (whose slug may be taken again) keeps its backups
#: until they are shredded.
BY_ID_ONLY = ("/api/v1/orgs/{org_id:str}/backup-key",)
REPO = Path(__file__).resolve().parents[2]


def _handlers(app: Any) -> list[tuple[str, Any]]:
    found = []
    for route in app.routes:
        if isinstance(route, HTTPRoute):
            found.extend((route.path_format, h) for h in route.route_handlers)
    return found


def test_org_paths_use_one_parameter_name_and_the_access_dependency(make_settings: Any) -> None:
    app = create_app(make_settings())
    checked = 0
    for path, handler in _handlers(app):
        raw = handler.paths and next(iter(handler.paths))
        if not path.startswith("/api/v1/orgs/{") or raw.startswith(BY_ID_ONLY):
            continue
        checked += 1
        assert raw.startswith(f"/api/v1/orgs/{{{ORG_PARAM}:str}}"), raw
        declared = set(handler.parsed_fn_signature.parameters)
        if required_role(handler.opt) is not None:
            assert "access" in declared, f"{raw}: a declared role needs the access dependency"
    assert checked > 30


def test_the_uis_org_pages_take_the_org_from_the_access_dependency(make_settings: Any) -> None:
    """The UI's pages of one org resolve it through ``access`` (as the viewer sees it) before the
    handler runs, like the API's routes; none looks the org up itself."""
    app = create_app(make_settings())
    pages = [
        (path, h)
        for path, h in _handlers(app)
        if path.startswith("/ui/orgs/{")
        and "OPTIONS" not in h.http_methods  # Litestar's own answer to OPTIONS
    ]
    for path, handler in pages:
        assert "access" in handler.parsed_fn_signature.parameters, path
    assert len(pages) >= 15
    for module in ("org_pages", "branding_pages", "org_actions", "member_pages", "switcher"):
        source = (REPO / "control_plane" / "ui" / f"{module}.py").read_text()
        assert "org_access(" not in source, f"control_plane/ui/{module}.py resolves an org itself"


def test_a_declared_role_needs_the_access_dependency(make_settings: Any) -> None:
    app = create_app(make_settings())
    for path, handler in _handlers(app):
        if required_role(handler.opt) is not None:
            assert "{org_ref:str}" in next(iter(handler.paths)), path
            assert "access" in handler.parsed_fn_signature.parameters, path


@pytest.mark.parametrize(
    ("method", "route"), [("GET", "invites"), ("GET", "backups"), ("POST", "domains/x/verify")]
)
async def test_the_declared_role_is_checked_before_the_handler(
    client: AsyncTestClient[Any], method: str, route: str
) -> None:
    alice = await user(client, "alice@example.com")
    bob = await user(client, "bob@example.com")
    stranger = await user(client, "stranger@example.com")
    await make_org(client, alice, "acme")
    await add_member(client, alice, "acme", "bob@example.com", "member")
    assert_problem(
        await client.request(method, f"/api/v1/orgs/acme/{route}", headers=bob),
        403,
        "admin_required",
    )
    assert_problem(
        await client.request(method, f"/api/v1/orgs/acme/{route}", headers=stranger),
        404,
        "org_not_found",
    )
