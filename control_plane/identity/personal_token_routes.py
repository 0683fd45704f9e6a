"""``/api/v1/me/tokens``: make, list and revoke one's personal access tokens.

The secret is in the answer of ``POST`` only (with ``Cache-Control: no-store``); lists and audit
events name a token by id and name. See :mod:`control_plane.tokens.personal_tokens`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from litestar import Response, delete, get, post
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from control_plane.actor import ActorDep
from control_plane.audit_trail import record
from control_plane.db.models import PersonalToken, utcnow
from control_plane.deps import DB, Caller, RuntimeDep
from control_plane.tokens.mfa_gate import subject_amr
from control_plane.tokens.personal_tokens import (
    ALL_ORGS,
    create_personal_token,
    list_personal_tokens,
    revoke_personal_token,
)
from control_plane.users.schemas import Strict
from orgplane_wire.cursors import Page

OrgId = Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
Scope = Annotated[str, msgspec.Meta(min_length=1, max_length=40)]


class CreatePersonalTokenBody(Strict):
    #: What the token is for ("CI deploys"); shown in lists.
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    #: Org ids the token may enter, or ``"all"``: every org the user belongs to, now or later.
    orgs: Annotated[list[OrgId], msgspec.Meta(min_length=1, max_length=100)] | Literal["all"]
    #: Scopes its org tokens may carry (each org token: these and the user's role, intersected).
    scopes: Annotated[list[Scope], msgspec.Meta(min_length=1, max_length=10)]
    #: Required: days until it expires (at most ``ORGPLANE_PERSONAL_TOKEN_MAX_DAYS``).
    expires_in_days: Annotated[int, msgspec.Meta(ge=1)]


class PersonalTokenOut(msgspec.Struct):
    id: str
    name: str
    #: Org ids, or ``"all"``.
    orgs: list[str] | Literal["all"]
    scopes: list[str]
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None
    expired: bool

    @classmethod
    def of(cls, row: PersonalToken, now: datetime) -> PersonalTokenOut:
        """The public view of ``row`` (never the secret or its hash)."""
        return cls(
            id=row.id,
            name=row.name,
            orgs=ALL_ORGS if row.all_orgs else list(row.org_ids),
            scopes=list(row.scopes),
            created_at=row.created_at,
            expires_at=row.expires_at,
            last_used_at=row.last_used_at,
            expired=row.expires_at <= now,
        )


class CreatedPersonalToken(PersonalTokenOut):
    #: The secret: shown in this answer only, never again.
    token: str = ""


@post("/api/v1/me/tokens", status_code=HTTP_201_CREATED, tags=["identity"])
async def create_token(
    data: JSONBody[CreatePersonalTokenBody],
    actor: ActorDep,
    db: DB,
    runtime: RuntimeDep,
) -> Response[CreatedPersonalToken]:
    """Make a personal access token; its secret is in this answer and never shown again."""
    row, secret = await create_personal_token(
        db,
        user=actor.user,
        name=data.name,
        orgs=data.orgs,
        scopes=data.scopes,
        expires_in_days=data.expires_in_days,
        max_days=runtime.settings.tokens.personal_token_max_days,
        amr=" ".join(subject_amr(actor.principal.claims, None)),
    )
    record(
        db,
        action="personal_token.create",
        actor=actor.user,
        target_type="personal_token",
        target_id=row.id,
        ip=actor.ip,
        name=row.name,
        scopes=row.scopes,
        orgs=ALL_ORGS if row.all_orgs else row.org_ids,
        expires_at=row.expires_at.isoformat(),
        amr=row.amr,
    )
    await db.commit()
    view = PersonalTokenOut.of(row, row.created_at)
    answer = CreatedPersonalToken(**msgspec.structs.asdict(view), token=secret)
    return Response(answer, status_code=HTTP_201_CREATED, headers={"Cache-Control": "no-store"})


@get("/api/v1/me/tokens", tags=["identity"])
async def list_tokens(principal: Caller, db: DB) -> Page[PersonalTokenOut]:
    """My personal access tokens that are not revoked (expired ones too), newest first."""
    rows = await list_personal_tokens(db, principal.user)
    now = utcnow()
    return Page([PersonalTokenOut.of(row, now) for row in rows])


@delete("/api/v1/me/tokens/{token_id:str}", status_code=HTTP_204_NO_CONTENT, tags=["identity"])
async def revoke_token(token_id: FromPath[str], actor: ActorDep, db: DB) -> None:
    """Revoke one of my personal access tokens; it stops working at once."""
    row = await revoke_personal_token(db, actor.user, token_id)
    record(
        db,
        action="personal_token.revoke",
        actor=actor.user,
        target_type="personal_token",
        target_id=row.id,
        ip=actor.ip,
        name=row.name,
    )
    await db.commit()


ROUTES = [create_token, list_tokens, revoke_token]
