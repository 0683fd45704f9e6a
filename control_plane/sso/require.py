"""Orgs that require single sign-on, and the password sign-ins they refuse.

    PUT /api/v1/orgs/{org_ref}/sso-requirement {required}   org admins and owners, staff

Turning it on needs the ``sso`` feature in the org's effective features (403
``feature_not_in_plan``), an enabled identity provider (409 ``no_identity_provider``) and a
caller signed in through a provider, or a platform admin (403 ``sso_session_required``): whoever
turns it on can still sign in. Turning it off is always allowed.

While it is on, a direct member of the org (not a platform admin: they keep the password as the
way back in) who signs in with the right password is answered 401 ``sso_required``: they sign
in with "Sign in with <provider>". Sessions already open, and personal access tokens made
earlier, keep working for the control plane, but no longer enter the org: the token exchange
refuses a member's entry without a federated sign-in (``control_plane.tokens.mfa_gate``).
"""

from __future__ import annotations

import msgspec
from litestar import put
from litestar.params import JSONBody
from sqlmodel import col, select

from control_plane.actor import ActorDep
from control_plane.audit_trail import record
from control_plane.db.models import utcnow
from control_plane.db.sso_models import IdentityProvider
from control_plane.deps import DB
from control_plane.features.plans import require_feature
from control_plane.orgs.guards import OrgAccessDep, needs_role
from control_plane.orgs.hierarchy import effective_features
from control_plane.tokens.mfa_gate import FEDERATED as FEDERATED
from control_plane.tokens.mfa_gate import subject_amr
from control_plane.users.schemas import Strict
from orgplane_wire.problems import Conflict, Forbidden


class SsoRequirementBody(Strict):
    required: bool


class SsoRequirement(msgspec.Struct):
    org_id: str
    require_sso: bool


@put(
    "/api/v1/orgs/{org_ref:str}/sso-requirement",
    tags=["identity"],
    opt=needs_role("admin", to="change whether the org requires single sign-on"),
)
async def put_sso_requirement(
    data: JSONBody[SsoRequirementBody], access: OrgAccessDep, actor: ActorDep, db: DB
) -> SsoRequirement:
    """Switch whether the org's members must sign in through an identity provider (org
    admins and owners, staff; the ``sso`` plan feature); audited as ``org.require_sso``."""
    org = access.org
    if data.required and not org.require_sso:
        require_feature(await effective_features(db, org), "sso", to="require single sign-on")
        enabled = select(IdentityProvider.id).where(col(IdentityProvider.enabled)).limit(1)
        if (await db.exec(enabled)).first() is None:
            raise Conflict(
                "No identity provider is enabled: members could not sign in at all.",
                code="no_identity_provider",
            )
        federated = FEDERATED in subject_amr(actor.principal.claims, None)
        if not (federated or actor.principal.is_platform_admin):
            raise Forbidden(
                "Sign in through an identity provider to require it of the org.",
                code="sso_session_required",
            )
    if org.require_sso != data.required:
        org.require_sso = data.required
        org.updated_at = utcnow()
        db.add(org)
        record(db, action="org.require_sso", actor=actor.user, org_id=org.id,
               target_type="org", target_id=org.id, ip=actor.ip,
               required=data.required)  # fmt: skip
    await db.commit()
    return SsoRequirement(org.id, org.require_sso)


ROUTES = [put_sso_requirement]
