"""``/api/v1/oauth/clients``: platform admins register, list and delete OAuth clients.

The secret of a confidential client is in the answer of ``POST`` only (``Cache-Control:
no-store``); lists and audit events never carry it or its hash.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from litestar import Response, delete, get, post
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from control_plane.actor import ActorDep
from control_plane.auth import require_platform_admin
from control_plane.db.models import OAuthClient
from control_plane.deps import DB, Caller, RuntimeDep
from control_plane.oidc.clients import ClientType, list_clients
from control_plane.oidc.registry import Actor, delete_client, register_client
from control_plane.users.schemas import Strict
from orgplane_wire.cursors import Page

RedirectUri = Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
ScopeName = Annotated[str, msgspec.Meta(min_length=1, max_length=40)]


class CreateClientBody(Strict):
    #: Shown to users on the consent page.
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    #: ``confidential`` (has a secret) or ``public`` (PKCE only: browser and native apps).
    type: ClientType
    #: Exact redirect URIs: https, or http on a loopback host; no fragment.
    redirect_uris: Annotated[list[RedirectUri], msgspec.Meta(min_length=1, max_length=10)]
    #: Scopes the client may ask for: ``openid`` and optionally ``profile``, ``email``.
    scopes: Annotated[list[ScopeName], msgspec.Meta(min_length=1, max_length=3)] = msgspec.field(
        default_factory=lambda: ["openid", "profile", "email"]
    )
    #: The platform's own application: no consent page.
    first_party: bool = False


class ClientOut(msgspec.Struct):
    client_id: str
    name: str
    type: str
    redirect_uris: list[str]
    scopes: list[str]
    first_party: bool
    created_by: str
    created_at: datetime

    @classmethod
    def of(cls, row: OAuthClient) -> ClientOut:
        """The public view of ``row`` (never the secret's hash)."""
        return cls(
            client_id=row.id,
            name=row.name,
            type=row.client_type,
            redirect_uris=list(row.redirect_uris),
            scopes=list(row.scopes),
            first_party=row.first_party,
            created_by=row.created_by,
            created_at=row.created_at,
        )


class CreatedClient(ClientOut):
    #: A confidential client's secret: in this answer only, never again. None for public ones.
    client_secret: str | None = None


@post("/api/v1/oauth/clients", status_code=HTTP_201_CREATED, tags=["oauth"])
async def create_client(
    data: JSONBody[CreateClientBody],
    actor: ActorDep,
    db: DB,
    runtime: RuntimeDep,
) -> Response[CreatedClient]:
    """Register a client (platform admins); a confidential client's secret is in this answer
    and never shown again."""
    require_platform_admin(actor.principal)
    row, secret = await register_client(
        runtime,
        db,
        name=data.name,
        client_type=data.type,
        redirect_uris=data.redirect_uris,
        scopes=data.scopes,
        first_party=data.first_party,
        actor=Actor(user=actor.user, ip=actor.ip),
    )
    answer = CreatedClient(**msgspec.structs.asdict(ClientOut.of(row)), client_secret=secret)
    return Response(answer, status_code=HTTP_201_CREATED, headers={"Cache-Control": "no-store"})


@get("/api/v1/oauth/clients", tags=["oauth"])
async def get_clients(principal: Caller, db: DB) -> Page[ClientOut]:
    """Every registered client, oldest first (platform admins)."""
    require_platform_admin(principal)
    return Page([ClientOut.of(row) for row in await list_clients(db)])


@delete("/api/v1/oauth/clients/{client_id:str}", status_code=HTTP_204_NO_CONTENT, tags=["oauth"])
async def delete_client_route(client_id: FromPath[str], actor: ActorDep, db: DB) -> None:
    """Delete a client (platform admins): its codes and the access tokens it holds stop
    working at once (userinfo looks the client up)."""
    require_platform_admin(actor.principal)
    await delete_client(db, client_id, actor=Actor(user=actor.user, ip=actor.ip))


ROUTES = [create_client, get_clients, delete_client_route]
