"""Staff support access: platform admins entering an org they are not a member of.

* A platform admin who is not a member exchanges into an org only with a stated reason (the
  ``orgplane_reason`` form field of the token exchange). The org token carries an RFC 8693
  ``act`` claim naming them, and every such exchange is audited as ``staff.access``.
* An org with ``require_access_approval`` wants more: the staff member files an access request
  first, an owner of the org approves or rejects it, and an approval lets the staff member in
  for ``access_approval_ttl`` seconds. An owner can revoke an approval early (reject it).
* The org's admins and owners see its requests and every staff access event; its owners
  switch the approval requirement on and off (:func:`set_access_approval`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.actor import Actor
from control_plane.audit_trail import record
from control_plane.db.models import AccessRequest, AuditEvent, Org, User, utcnow
from control_plane.orgs.access import OrgAccess, approved_request
from control_plane.pagination import newest_first, timestamp_cursor
from control_plane.runtime import Runtime
from control_plane.tokens.org_revocation import revoke_user_in_org
from orgplane_wire.cursors import check_limit, decode_cursor, encode_cursor
from orgplane_wire.problems import BadRequest, Conflict, Forbidden, NotFound

MIN_REASON: Final = 8
MAX_REASON: Final = 500
#: Audit actions an org's admins see as its access events.
ACCESS_ACTIONS: Final = (
    "staff.access",
    "access_request.create",
    "access_request.approve",
    "access_request.reject",
)


class SupportAccessRefused(Exception):
    """A staff member may not enter the org now; ``code`` says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def checked_reason(reason: str | None) -> str:
    """The stated reason, trimmed; refused when missing, too short or too long."""
    text = (reason or "").strip()
    if not MIN_REASON <= len(text) <= MAX_REASON:
        raise SupportAccessRefused(
            "reason_required",
            f"Staff support access needs a reason of {MIN_REASON} to {MAX_REASON} characters.",
        )
    return text


async def staff_entry(
    db: AsyncSession, *, org: Org, staff: User, reason: str | None, now: datetime | None = None
) -> tuple[str, AccessRequest | None]:
    """The checked reason and the approval a staff entry rests on (None: none needed).

    Raises :class:`SupportAccessRefused` without a reason, or without a valid approval when
    the org requires one.
    """
    text = checked_reason(reason)
    if not org.require_access_approval:
        return text, None
    approval = await approved_request(db, org_id=org.id, staff_id=staff.id, now=now or utcnow())
    if approval is None:
        raise SupportAccessRefused(
            "approval_required",
            "This org requires an approved access request: file one with "
            f"POST /api/v1/orgs/{org.id}/access-requests and ask an owner to approve it.",
        )
    return text, approval


async def set_access_approval(
    db: AsyncSession, *, org: Org, role: str | None, owner: User, required: bool, ip: str
) -> Org:
    """Switch the org's ``require_access_approval`` (its owners only: 403 ``owner_required``,
    platform admins included, or staff could switch their own gate off); audited as
    ``org.access_approval`` when it changes. Commits."""
    if role != "owner":
        raise Forbidden(
            "Only the org's owners decide whether staff need an approval.", code="owner_required"
        )
    if org.require_access_approval != required:
        org.require_access_approval = required
        org.updated_at = utcnow()
        db.add(org)
        record(
            db,
            action="org.access_approval",
            actor=owner,
            org_id=org.id,
            target_type="org",
            target_id=org.id,
            ip=ip,
            required=required,
        )
    await db.commit()
    return org


def record_staff_access(
    db: AsyncSession,
    *,
    staff: User,
    org: Org,
    reason: str,
    approval: AccessRequest | None,
    jti: str,
    ip: str,
) -> None:
    """Audit one staff entry (``staff.access``) in ``db``'s transaction."""
    record(
        db,
        action="staff.access",
        actor=staff,
        org_id=org.id,
        target_type="org",
        target_id=org.id,
        ip=ip,
        reason=reason,
        jti=jti,
        access_request=approval.id if approval else None,
    )


async def file_request(
    db: AsyncSession, *, org: Org, staff: User, reason: str, ip: str
) -> AccessRequest:
    """A new pending request (committed); 409 while the staff member has one pending."""
    pending = await db.exec(
        select(AccessRequest.id).where(
            col(AccessRequest.org_id) == org.id,
            col(AccessRequest.staff_user_id) == staff.id,
            col(AccessRequest.status) == "pending",
        )
    )
    if pending.first() is not None:
        raise Conflict(
            "You already have a pending access request for this org.", code="access_request_pending"
        )
    try:
        text = checked_reason(reason)
    except SupportAccessRefused as exc:
        raise BadRequest(exc.message, code="invalid_reason", field="reason") from None
    request = AccessRequest(org_id=org.id, staff_user_id=staff.id, reason=text)
    db.add(request)
    record(
        db,
        action="access_request.create",
        actor=staff,
        org_id=org.id,
        target_type="access_request",
        target_id=request.id,
        ip=ip,
        reason=text,
    )
    await db.commit()
    return request


def require_owner(access: OrgAccess) -> None:
    """Only the org's owners decide its access requests."""
    if access.role != "owner":
        raise Forbidden("Only the org's owners decide access requests.", code="owner_required")


async def owner_decides(
    db: AsyncSession,
    runtime: Runtime,
    actor: Actor,
    access: OrgAccess,
    *,
    request_id: str,
    approve: bool,
) -> tuple[AccessRequest, str]:
    """An owner of ``access.org`` approves or rejects a request (rejecting an approval revokes
    it, and the staff member's org tokens with it): the request and the staff member's email."""
    require_owner(access)
    decided = await decide_request(
        db,
        org=access.org,
        request_id=request_id,
        owner=actor.user,
        approve=approve,
        ttl_seconds=runtime.settings.tokens.access_approval_ttl,
        ip=actor.ip,
    )
    if decided.status == "revoked":  # the staff member's org tokens end with the approval
        await revoke_user_in_org(runtime, db, org_id=access.org.id, user_id=decided.staff_user_id)
    staff = await db.get(User, decided.staff_user_id)
    return decided, staff.email if staff else ""


async def decide_request(
    db: AsyncSession,
    *,
    org: Org,
    request_id: str,
    owner: User,
    approve: bool,
    ttl_seconds: int,
    ip: str,
) -> AccessRequest:
    """Approve or reject a pending request, or revoke an approval (reject); commits.

    404 ``access_request_not_found`` for a request of another org; 409
    ``access_request_decided`` when it was already decided that way or can no longer change.
    """
    request = await db.get(AccessRequest, request_id)
    if request is None or request.org_id != org.id:
        raise NotFound("No such access request.", code="access_request_not_found")
    allowed = ("pending",) if approve else ("pending", "approved")
    if request.status not in allowed:
        raise Conflict(
            f"The access request is already {request.status}.", code="access_request_decided"
        )
    now = utcnow()
    action = "approve" if approve else "reject"
    revoking = request.status == "approved"
    request.status = "approved" if approve else ("revoked" if revoking else "rejected")
    request.decided_by, request.decided_at = owner.id, now
    request.expires_at = now + timedelta(seconds=ttl_seconds) if approve else now
    db.add(request)
    record(
        db,
        action=f"access_request.{action}",
        actor=owner,
        org_id=org.id,
        target_type="access_request",
        target_id=request.id,
        ip=ip,
        staff_user_id=request.staff_user_id,
        status=request.status,
    )
    await db.commit()
    return request


def shown_status(request: AccessRequest, now: datetime) -> str:
    """The status a listing shows: an approval past its end reads ``expired``."""
    expires = request.expires_at
    if request.status == "approved" and expires is not None and expires <= now:
        return "expired"
    return request.status


async def list_requests(
    db: AsyncSession, *, org_id: str, limit: int, cursor: str | None
) -> tuple[list[tuple[AccessRequest, str]], str | None]:
    """The org's requests with their staff member's email, newest first, and the next cursor."""
    query = (
        select(AccessRequest, User.email)
        .join(User, col(User.id) == col(AccessRequest.staff_user_id))
        .where(col(AccessRequest.org_id) == org_id)
    )
    query = newest_first(query, col(AccessRequest.created_at), col(AccessRequest.id), cursor)
    rows = [(req, email) for req, email in (await db.exec(query.limit(check_limit(limit) + 1)))]
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1][0] if more else None
    next_cursor = timestamp_cursor(last.created_at, last.id) if last else None
    return rows, next_cursor


async def list_access_events(
    db: AsyncSession, *, org_id: str, limit: int, cursor: str | None
) -> tuple[list[AuditEvent], str | None]:
    """The org's staff-access audit events, newest first, and the next cursor."""
    query = select(AuditEvent).where(
        col(AuditEvent.org_id) == org_id, col(AuditEvent.action).in_(ACCESS_ACTIONS)
    )
    if cursor:
        (last_id,) = decode_cursor(cursor, 1)
        if not last_id.isdigit():
            raise BadRequest("The cursor is not valid.", code="invalid_cursor", field="cursor")
        query = query.where(col(AuditEvent.id) < int(last_id))
    query = query.order_by(col(AuditEvent.id).desc()).limit(check_limit(limit) + 1)
    events = list((await db.exec(query)).all())
    more = len(events) > limit
    events = events[:limit]
    return events, (encode_cursor(str(events[-1].id)) if more else None)
