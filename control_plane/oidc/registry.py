"""Registering and deleting OAuth clients, audited: what the admin API and ``orgplane
oauth-clients`` both do (:mod:`control_plane.oidc.clients` holds the rules)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.audit_trail import record
from control_plane.db.models import AuthorizationCode, OAuthClient, User
from control_plane.oidc.clients import ClientType, new_client, require_client
from control_plane.runtime import Runtime


@dataclass(frozen=True)
class Actor:
    """Who registers or deletes: a platform admin (API) or the operator (CLI)."""

    user: User | None = None
    email: str = ""
    ip: str = ""


def _audit(db: AsyncSession, action: str, row: OAuthClient, actor: Actor, **detail: Any) -> None:
    record(
        db,
        action=action,
        actor=actor.user,
        actor_email=actor.email,
        target_type="oauth_client",
        target_id=row.id,
        ip=actor.ip,
        name=row.name,
        **detail,
    )


async def register_client(
    runtime: Runtime,
    db: AsyncSession,
    *,
    name: str,
    client_type: ClientType,
    redirect_uris: list[str],
    scopes: list[str],
    first_party: bool,
    actor: Actor,
) -> tuple[OAuthClient, str | None]:
    """Register a client (400 problems for bad URIs or scopes, nothing stored), audit it,
    commit, and make sure an ID-token key exists; answers the row and the secret (shown once)."""
    row, secret = new_client(
        name=name,
        client_type=client_type,
        redirect_uris=redirect_uris,
        scopes=scopes,
        first_party=first_party,
        created_by=actor.user.id if actor.user else "",
    )
    db.add(row)
    _audit(
        db,
        "oauth_client.create",
        row,
        actor,
        type=row.client_type,
        redirect_uris=row.redirect_uris,
        scopes=row.scopes,
        first_party=row.first_party,
    )
    await db.commit()
    await runtime.keyring.ensure_id_token_key(db)
    return row, secret


async def delete_client(db: AsyncSession, client_id: str, *, actor: Actor) -> OAuthClient:
    """Delete a client and its codes (404 ``oauth_client_not_found``), audited; commits. Its
    access tokens stop working with it (userinfo looks the client up)."""
    row = await require_client(db, client_id)
    await db.exec(delete(AuthorizationCode).where(col(AuthorizationCode.client_id) == row.id))
    await db.delete(row)
    _audit(db, "oauth_client.delete", row, actor)
    await db.commit()
    return row
