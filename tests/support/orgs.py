"""Helpers for the orgs, members, invites and audit API tests."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient
from sqlalchemy import func
from sqlmodel import select

from control_plane.db.models import AuditEvent, Invite, Membership, Org, User
from tests.support.api import add_user, direct_db, login


async def user(client: AsyncTestClient[Any], email: str, *, admin: bool = False) -> dict[str, str]:
    """Create a user and answer their Authorization headers."""
    await add_user(client, email, admin=admin)
    return await login(client, email)


async def make_org(
    client: AsyncTestClient[Any], headers: dict[str, str], slug: str, **body: Any
) -> dict[str, Any]:
    """Create an org through the API (202) and answer its JSON."""
    answer = await client.post(
        "/api/v1/orgs",
        headers=headers,
        json={"name": body.pop("name", slug.title()), "slug": slug, **body},
    )
    assert answer.status_code == 202, answer.text
    org: dict[str, Any] = answer.json()
    return org


async def me_id(client: AsyncTestClient[Any], headers: dict[str, str]) -> str:
    """The id of the user behind ``headers``."""
    answer = await client.get("/api/v1/me", headers=headers)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["id"])


async def add_member(
    client: AsyncTestClient[Any], headers: dict[str, str], org: str, email: str, role: str
) -> None:
    """Add an existing user to ``org`` with ``role`` (201)."""
    answer = await client.post(
        f"/api/v1/orgs/{org}/members", headers=headers, json={"email": email, "role": role}
    )
    assert answer.status_code == 201, answer.text


async def row_counts(client: AsyncTestClient[Any]) -> dict[str, int]:
    """Rows per table the orgs API writes (audit events included)."""
    counts = {}
    async with direct_db(client) as db:
        for model in (Org, Membership, Invite, User, AuditEvent):
            counts[model.__name__] = (await db.exec(select(func.count()).select_from(model))).one()
    return counts


async def org_rows(client: AsyncTestClient[Any]) -> list[tuple[Any, ...]]:
    """Every org row as comparable tuples (to show nothing changed)."""
    async with direct_db(client) as db:
        rows = (await db.exec(select(Org).order_by(Org.slug))).all()
        return [
            (
                o.id,
                o.slug,
                o.name,
                o.plan,
                o.parent_id,
                o.features,
                o.limits,
                o.desired_state,
                o.suspended,
                o.deletion_locked,
                o.config_version,
                o.generation,
                o.delete_after,
            )
            for o in rows
        ]
