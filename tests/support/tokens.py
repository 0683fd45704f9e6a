"""Helpers for token tests: orgs and memberships written straight to the database, token
endpoint calls, and signing arbitrary claims with the platform's real key (forgery tests)."""

from __future__ import annotations

from typing import Any

import jwt
from litestar.testing import AsyncTestClient

from control_plane.db.models import Membership, Org
from control_plane.signing.keys import KeyRing, LoadedKey
from control_plane.tokens.grants import ACCESS_TOKEN_TYPE, TOKEN_EXCHANGE_GRANT
from orgplane_wire.secret_box import SecretBox
from tests.support.api import PASSWORD, direct_db

TOKEN_URL = "/oauth/token"


async def make_org(
    client: AsyncTestClient[Any],
    slug: str,
    *,
    members: dict[str, str] | None = None,
    **fields: Any,
) -> str:
    """An org (and memberships ``{user_id: role}``) written to the database; returns its id."""
    async with direct_db(client) as db:
        org = Org(slug=slug, name=slug.title(), **fields)
        db.add(org)
        await db.flush()
        for user_id, role in (members or {}).items():
            db.add(Membership(user_id=user_id, org_id=org.id, role=role))
        await db.commit()
        return org.id


async def login_body(
    client: AsyncTestClient[Any], email: str, password: str = PASSWORD
) -> dict[str, Any]:
    """The JSON answer of a login."""
    response = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def exchange(client: AsyncTestClient[Any], subject_token: str, **params: str) -> Any:
    """POST a token exchange; ``params`` default to ``audience`` given by the caller."""
    form = {
        "grant_type": TOKEN_EXCHANGE_GRANT,
        "subject_token": subject_token,
        "subject_token_type": ACCESS_TOKEN_TYPE,
        **params,
    }
    return await client.post(TOKEN_URL, data=form)


async def platform_key(client: AsyncTestClient[Any], secret: str) -> LoadedKey:
    """The platform's current signing key, decrypted (to forge wrong iss/aud/exp...)."""
    ring = KeyRing(SecretBox(secret, purpose="orgplane signing keys v1"), alg="ES256")
    async with direct_db(client) as db:
        return await ring.signing_key(db)


def sign_exactly(key: LoadedKey, claims: dict[str, Any]) -> str:
    """``claims`` as they are (nothing added), signed like the platform signs."""
    return jwt.encode(
        claims, key.private_key, algorithm=key.alg, headers={"kid": key.kid, "typ": "at+jwt"}
    )
