"""The org a request is about, resolved once, with the role its handler needs.

A handler under ``/api/v1/orgs/{org_ref:str}/...`` takes ``access: OrgAccessDep``: the org
(by id or slug) as the caller sees it, 404 ``org_not_found`` when they cannot, and their
effective role. The role a handler needs is declared on its route,
``opt=needs_role("admin", to="manage members")``, and checked before the handler runs (403
``admin_required``...), so no handler forgets it. Handlers whose rule depends on the body (an
instance action, a member leaving) check it themselves with ``access.require``. The UI's org
pages take the same ``access``, resolved for the signed-in viewer
(``control_plane.ui.session.provide_viewer_org_access``).
"""

from __future__ import annotations

from typing import Any, Final, TypeAlias

from litestar import Request
from litestar.di import NamedDependency
from litestar.params import SkipValidation
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.auth import Principal
from control_plane.deps import DB, Caller
from control_plane.orgs.access import OrgAccess, org_access

#: The one name of the org path parameter: an org id or slug.
ORG_PARAM: Final = "org_ref"
_OPT_KEY: Final = "orgplane_org_role"


def needs_role(minimum: str, *, to: str) -> dict[str, Any]:
    """Route ``opt`` declaring the caller's minimum role in the org (``to``: what it is for,
    said in the 403)."""
    return {_OPT_KEY: (minimum, to)}


def required_role(opt: dict[str, Any]) -> tuple[str, str] | None:
    """The (role, purpose) a route's ``opt`` declares, if any."""
    found = opt.get(_OPT_KEY)
    return (str(found[0]), str(found[1])) if found else None


async def resolve_org_access(
    request: Request[Any, Any, Any], caller: Principal, db: AsyncSession
) -> OrgAccess:
    """The org of the path's ``{org_ref}`` as ``caller`` sees it, with the role the route
    requires checked (the API's and the UI's ``access`` dependencies)."""
    access = await org_access(db, caller, request.path_params[ORG_PARAM])
    needed = required_role(request.route_handler.opt)
    if needed is not None:
        access.require(needed[0], to=needed[1])
    return access


async def provide_org_access(
    request: Request[Any, Any, Any], principal: Caller, db: DB
) -> OrgAccess:
    """Dependency: the org of the path's ``{org_ref}`` as the caller sees it, with the role the
    route requires checked."""
    return await resolve_org_access(request, principal, db)


#: Built by :func:`provide_org_access` from checked values, so not validated again.
OrgAccessDep: TypeAlias = NamedDependency[SkipValidation[OrgAccess]]
