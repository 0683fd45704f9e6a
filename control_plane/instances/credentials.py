"""Instance credentials: ``opi_<org_id>.<secret>``, stored as the SHA-256 of the whole
credential; the org id finds the Instance row by primary key (see
:mod:`control_plane.instances.heartbeat`)."""

from __future__ import annotations

import re
import secrets

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.audit_trail import record
from control_plane.db.models import Instance, Org, utcnow
from orgplane_wire.problems import NotFound, Unauthenticated
from orgplane_wire.secret_box import hash_secret, secret_matches

CREDENTIAL_PREFIX = "opi"
_CREDENTIAL = re.compile(r"^opi_([A-Za-z0-9_-]{1,64})\.[A-Za-z0-9_-]{20,128}$")


def credential_org(credential: str) -> str | None:
    """The org id a credential names, or None when it is not shaped like one."""
    match = _CREDENTIAL.match(credential) if len(credential) <= 200 else None
    return match.group(1) if match else None


async def issue_instance_credential(db: AsyncSession, *, org_id: str) -> str:
    """A new credential for the org's instance (the old one stops working); not committed."""
    instance = await db.get(Instance, org_id)
    if instance is None:
        raise NotFound("The org has no instance.", code="instance_not_found")
    credential = f"{CREDENTIAL_PREFIX}_{org_id}.{secrets.token_urlsafe(32)}"
    instance.credential_hash = hash_secret(credential)
    instance.updated_at = utcnow()
    db.add(instance)
    record(
        db,
        action="instance.credential_issued",
        org_id=org_id,
        target_type="instance",
        target_id=org_id,
    )
    return credential


#: The instance and its org in one indexed lookup by primary key: all a quiet heartbeat reads.
_INSTANCE_AND_ORG = select(Instance, Org).join(Org, col(Org.id) == col(Instance.org_id))


async def authenticate_instance(db: AsyncSession, credential: str) -> tuple[Instance, Org]:
    """The Instance the credential belongs to, and its org (one query); 401 otherwise."""
    org_id = credential_org(credential)
    found = (
        (await db.exec(_INSTANCE_AND_ORG.where(col(Instance.org_id) == org_id))).first()
        if org_id
        else None
    )
    instance, org = found if found is not None else (None, None)
    stored = instance.credential_hash if instance is not None else ""
    # Compare even when nothing matched, so timing does not tell which part was wrong.
    ok = secret_matches(credential, stored or "0" * 64) and bool(stored)
    if instance is None or org is None or not ok:
        raise Unauthenticated("The instance credential is not valid.", code="invalid_credential")
    return instance, org
