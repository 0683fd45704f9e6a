"""Webhook endpoints API (platform admins only).

``POST /api/v1/webhooks`` registers a URL for some event types and answers its signing secret,
the only time it is shown; ``GET /api/v1/webhooks`` lists endpoints (never a secret);
``DELETE /api/v1/webhooks/{id}`` removes one with its deliveries;
``GET /api/v1/webhooks/{id}/deliveries`` is its delivery log, newest first: status, attempts,
the last HTTP status and each attempt. Registrations and removals are audited.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final

import msgspec
from litestar import delete, get, post
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT
from sqlalchemy import delete as sql_delete
from sqlmodel import col, select

from control_plane.actor import ActorDep
from control_plane.audit_trail import record
from control_plane.auth import require_platform_admin
from control_plane.db.models import WebhookDelivery, WebhookEndpoint
from control_plane.deps import DB, Caller, RuntimeDep
from control_plane.webhooks.destinations import resolve
from control_plane.webhooks.events import EVENT_TYPES
from control_plane.webhooks.signing import new_secret
from orgplane_wire.problems import BadRequest, NotFound

BASE: Final = "/api/v1/webhooks"


class EndpointBody(msgspec.Struct, forbid_unknown_fields=True):
    """A receiver: its URL and the event types it wants."""

    url: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
    event_types: Annotated[list[str], msgspec.Meta(min_length=1, max_length=len(EVENT_TYPES))]
    description: Annotated[str, msgspec.Meta(max_length=200)] = ""


class EndpointOut(msgspec.Struct):
    id: str
    url: str
    event_types: list[str]
    description: str
    created_at: datetime

    @classmethod
    def of(cls, endpoint: WebhookEndpoint) -> EndpointOut:
        return cls(
            id=endpoint.id,
            url=endpoint.url,
            event_types=list(endpoint.event_types),
            description=endpoint.description,
            created_at=endpoint.created_at,
        )


class CreatedEndpointOut(EndpointOut):
    #: The signing secret (``whsec_...``): shown in this answer only.
    secret: str = ""


class DeliveryOut(msgspec.Struct):
    id: str
    event_id: str
    event_type: str
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str
    next_attempt_at: datetime | None
    created_at: datetime
    completed_at: datetime | None
    attempt_log: list[dict[str, Any]]


class Page(msgspec.Struct):
    items: list[Any]


def _event_types(requested: list[str]) -> list[str]:
    unknown = sorted(set(requested) - set(EVENT_TYPES))
    if unknown:
        raise BadRequest(
            f"Unknown event types: {', '.join(unknown)[:200]}. Known: {', '.join(EVENT_TYPES)}.",
            code="invalid_event_type",
            field="event_types",
        )
    return sorted(set(requested))


@post(BASE, status_code=HTTP_201_CREATED, tags=["webhooks"])
async def create_endpoint(
    data: JSONBody[EndpointBody],
    actor: ActorDep,
    db: DB,
    runtime: RuntimeDep,
) -> CreatedEndpointOut:
    """Register a receiver (platform admins). The answer carries its signing secret, which is
    never shown again. 400 ``invalid_webhook_url``, ``webhook_destination_refused`` (a private,
    loopback or link-local destination) or ``invalid_event_type``."""
    require_platform_admin(actor.principal)
    event_types = _event_types(data.event_types)
    await resolve(data.url, allow_private=runtime.settings.fleet.webhook_allow_private)
    secret = new_secret()
    endpoint = WebhookEndpoint(
        url=data.url,
        event_types=event_types,
        description=data.description,
        secret_enc=runtime.box.encrypt(secret.encode()),
        created_by=actor.user.id,
    )
    db.add(endpoint)
    record(
        db,
        action="webhook.create",
        actor=actor.user,
        target_type="webhook",
        target_id=endpoint.id,
        ip=actor.ip,
        url=data.url,
        event_types=event_types,
    )
    await db.commit()
    out = EndpointOut.of(endpoint)
    return CreatedEndpointOut(**msgspec.structs.asdict(out), secret=secret)


@get(BASE, tags=["webhooks"])
async def list_endpoints(principal: Caller, db: DB) -> Page:
    """Every registered receiver, oldest first (platform admins; no secrets)."""
    require_platform_admin(principal)
    query = select(WebhookEndpoint).order_by(col(WebhookEndpoint.created_at))
    return Page(items=[EndpointOut.of(e) for e in (await db.exec(query)).all()])


async def _endpoint(db: DB, endpoint_id: str) -> WebhookEndpoint:
    endpoint = await db.get(WebhookEndpoint, endpoint_id[:64])
    if endpoint is None:
        raise NotFound("No such webhook endpoint.", code="webhook_not_found")
    return endpoint


@delete(f"{BASE}/{{endpoint_id:str}}", status_code=HTTP_204_NO_CONTENT, tags=["webhooks"])
async def delete_endpoint(endpoint_id: FromPath[str], actor: ActorDep, db: DB) -> None:
    """Remove a receiver and its delivery log (platform admins)."""
    require_platform_admin(actor.principal)
    endpoint = await _endpoint(db, endpoint_id)
    await db.exec(
        sql_delete(WebhookDelivery).where(col(WebhookDelivery.endpoint_id) == endpoint.id)
    )
    await db.delete(endpoint)
    record(
        db,
        action="webhook.delete",
        actor=actor.user,
        target_type="webhook",
        target_id=endpoint.id,
        ip=actor.ip,
        url=endpoint.url,
    )
    await db.commit()


@get(f"{BASE}/{{endpoint_id:str}}/deliveries", tags=["webhooks"])
async def list_deliveries(
    endpoint_id: FromPath[str],
    principal: Caller,
    db: DB,
    status: FromQuery[str | None] = None,
    limit: FromQuery[int] = 50,
) -> Page:
    """The receiver's deliveries, newest first, at most ``limit`` (1-200), maybe only those
    of one ``status`` (pending, succeeded, failed)."""
    require_platform_admin(principal)
    if not 1 <= limit <= 200:
        raise BadRequest("limit must be between 1 and 200.", code="invalid_limit", field="limit")
    if status is not None and status not in ("pending", "succeeded", "failed"):
        raise BadRequest(
            "status must be pending, succeeded or failed.", code="invalid_status", field="status"
        )
    endpoint = await _endpoint(db, endpoint_id)
    query = select(WebhookDelivery).where(col(WebhookDelivery.endpoint_id) == endpoint.id)
    if status is not None:
        query = query.where(col(WebhookDelivery.status) == status)
    query = query.order_by(col(WebhookDelivery.created_at).desc()).limit(limit)
    items = [
        DeliveryOut(
            id=d.id,
            event_id=d.event_id,
            event_type=d.event_type,
            status=d.status,
            attempts=d.attempts,
            last_status_code=d.last_status_code,
            last_error=d.last_error,
            next_attempt_at=d.next_attempt_at if d.status == "pending" else None,
            created_at=d.created_at,
            completed_at=d.completed_at,
            attempt_log=list(d.attempt_log),
        )
        for d in (await db.exec(query)).all()
    ]
    return Page(items=items)


ROUTES = [create_endpoint, list_endpoints, delete_endpoint, list_deliveries]
