"""Suspend, resume, delete (with a cancellable window), deletion lock, and finalizing.

Desired state lives on the org row; the reconciler acts on it. Every change of desired state
bumps ``generation`` (the reconciler compares it with what it observed) and ``config_version``
(the instance picks the change up on its next heartbeat).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Protocol

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.audit_trail import record
from control_plane.auth import Principal
from control_plane.db.models import Membership, Org, User, utcnow
from control_plane.db.phases import DesiredState
from control_plane.mail.outbox import enqueue
from control_plane.orgs.access import OrgAccess, governs
from control_plane.orgs.hierarchy import descendant_ids, live_children
from control_plane.settings import Settings
from control_plane.webhooks.events import emit, org_data
from orgplane_wire.problems import BadRequest, Conflict, Forbidden


class DisplayName(Protocol):
    """The org's display name in force (``control_plane.branding.resolve.display_name``)."""

    async def __call__(self, db: AsyncSession, org: Org, /) -> str: ...


async def _require_governor(db: AsyncSession, principal: Principal, org: Org, to: str) -> None:
    if not await governs(db, principal, org):
        raise Forbidden(
            f"Only platform admins or admins of a parent org may {to}.",
            code="parent_admin_required",
        )


async def _require_owner_or_governor(
    db: AsyncSession, principal: Principal, access: OrgAccess, to: str
) -> None:
    if not access.has("owner") and not await governs(db, principal, access.org):
        raise Forbidden(f"You need the owner role in this org to {to}.", code="owner_required")


def _bump(org: Org, *, config: bool = True) -> None:
    org.generation += 1
    if config:
        org.config_version += 1
    org.updated_at = utcnow()


async def _bump_descendants(db: AsyncSession, org: Org) -> None:
    """A suspended ancestor stops its descendants (``reconciler.reconcile.desired_state``):
    bump their generations so the reconciler revisits them now."""
    below = await descendant_ids(db, [org.id])
    if below:
        await db.exec(
            update(Org)
            .where(col(Org.id).in_(below))
            .values(
                generation=col(Org.generation) + 1,
                config_version=col(Org.config_version) + 1,
                updated_at=utcnow(),
            )
            .execution_options(synchronize_session="fetch")
        )


async def set_suspended(
    db: AsyncSession, *, principal: Principal, access: OrgAccess, suspended: bool, ip: str
) -> Org:
    """Suspend (desired state ``stopped``) or resume (``running``) an org and, through it, its
    descendants; idempotent."""
    org = access.org
    await _require_governor(db, principal, org, "suspend or resume this org")
    if org.suspended != suspended:
        org.suspended = suspended
        org.desired_state = (DesiredState.STOPPED if suspended else DesiredState.RUNNING).value
        _bump(org)
        db.add(org)
        await _bump_descendants(db, org)
        if suspended:
            emit(db, "org.suspended", org_data(org))
        record(
            db,
            action="org.suspend" if suspended else "org.resume",
            actor=principal.user,
            org_id=org.id,
            target_type="org",
            target_id=org.id,
            ip=ip,
        )
        await db.commit()
    return org


async def request_deletion(
    db: AsyncSession,
    *,
    principal: Principal,
    access: OrgAccess,
    confirm: str | None,
    grace_seconds: int,
    ip: str,
    display_name: DisplayName,
    mail: Settings | None = None,
) -> Org:
    """Start the pending-deletion window (idempotent while one runs). With ``mail`` settings
    of a platform that sends email, the org's owners are told, calling the org by
    ``display_name`` (branding's, passed in from above: orgs sit below branding)."""
    org = access.org
    await _require_owner_or_governor(db, principal, access, "delete it")
    if not confirm:
        raise BadRequest(
            "Pass confirm=<the org's slug> to delete it.",
            code="confirmation_required",
            field="confirm",
        )
    if confirm.lower() != org.slug:
        raise BadRequest(
            "confirm does not match the org's slug.", code="confirmation_mismatch", field="confirm"
        )
    if org.deletion_locked:
        raise Forbidden(
            "This org is locked against deletion; unlock it first.", code="deletion_locked"
        )
    if await live_children(db, org.id):
        raise Conflict("Delete or move this org's child orgs first.", code="has_children")
    if org.delete_after is None:
        org.delete_after = utcnow() + timedelta(seconds=grace_seconds)
        org.updated_at = utcnow()
        db.add(org)
        record(
            db,
            action="org.delete_requested",
            actor=principal.user,
            org_id=org.id,
            target_type="org",
            target_id=org.id,
            ip=ip,
            grace_seconds=grace_seconds,
        )
        if mail is not None and mail.mail.enabled:
            await _mail_owners(db, mail, org, actor=principal.user, display_name=display_name)
        await db.commit()
    return org


async def _mail_owners(
    db: AsyncSession, settings: Settings, org: Org, *, actor: User, display_name: DisplayName
) -> None:
    """Queue the "deletion scheduled" message to each direct owner of ``org``."""
    owners = await db.exec(
        select(User.email)
        .join(Membership, col(Membership.user_id) == col(User.id))
        .where(col(Membership.org_id) == org.id, col(Membership.role) == "owner")
    )
    when = org.delete_after.strftime("%Y-%m-%d %H:%M UTC") if org.delete_after else ""
    name = await display_name(db, org)
    for email in owners.all():
        enqueue(
            db,
            settings,
            kind="org_deletion",
            to=email,
            actor=actor.name or actor.email,
            org_name=name,
            org_slug=org.slug,
            delete_after=when,
            link=f"{settings.server.base_url}/ui/orgs/{org.slug}",
        )


async def cancel_deletion(
    db: AsyncSession, *, principal: Principal, access: OrgAccess, ip: str
) -> Org:
    """End a pending-deletion window before it passes."""
    org = access.org
    await _require_owner_or_governor(db, principal, access, "cancel its deletion")
    if org.delete_after is None:
        raise Conflict("This org is not pending deletion.", code="no_pending_deletion")
    org.delete_after = None
    org.updated_at = utcnow()
    db.add(org)
    record(
        db,
        action="org.delete_cancelled",
        actor=principal.user,
        org_id=org.id,
        target_type="org",
        target_id=org.id,
        ip=ip,
    )
    await db.commit()
    return org


async def set_deletion_lock(
    db: AsyncSession, *, principal: Principal, access: OrgAccess, locked: bool, ip: str
) -> Org:
    """Lock or unlock an org against deletion (platform admins and direct owners).

    Locking also cancels a pending deletion: a lock is a safety catch, and a window that
    runs out while locked would be a surprise either way.
    """
    org = access.org
    if not (access.staff or access.role == "owner"):
        raise Forbidden(
            "Only the org's owners and platform admins may lock or unlock it.",
            code="owner_required",
        )
    if org.deletion_locked != locked or (locked and org.delete_after is not None):
        cancelled = locked and org.delete_after is not None
        org.deletion_locked = locked
        if locked:
            org.delete_after = None
        org.updated_at = utcnow()
        db.add(org)
        record(
            db,
            action="org.lock" if locked else "org.unlock",
            actor=principal.user,
            org_id=org.id,
            target_type="org",
            target_id=org.id,
            ip=ip,
            cancelled_deletion=cancelled,
        )
        await db.commit()
    return org


async def finalize_due_deletions(db: AsyncSession) -> list[str]:
    """Mark every org whose deletion window has passed as ``deleted``; returns their ids.

    One conditional UPDATE decides, so replicas calling this at once finalize each org
    exactly once. Locked orgs are skipped. Commits.
    """
    now = utcnow()
    result = await db.exec(
        update(Org)
        .where(
            col(Org.delete_after).is_not(None),
            col(Org.delete_after) <= now,
            col(Org.desired_state) != DesiredState.DELETED,
            col(Org.deleted_at).is_(None),
            col(Org.deletion_locked).is_(False),
        )
        .values(
            desired_state=DesiredState.DELETED, generation=col(Org.generation) + 1, updated_at=now
        )
        # Refresh loaded rows by primary key: evaluating the WHERE in Python would compare
        # SQLite's naive timestamps with aware ones.
        .execution_options(synchronize_session="fetch")
        .returning(col(Org.id))
    )
    ids = [row[0] for row in result.all()]
    for org_id in ids:
        record(
            db,
            action="org.delete_finalized",
            org_id=org_id,
            target_type="org",
            target_id=org_id,
            actor_email="system",
        )
    await db.commit()
    return ids
