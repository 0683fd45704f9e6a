"""Registered OAuth clients: creation (the secret shown once), lookup, authentication.

A confidential client's secret is ``ocs_`` and 43 URL-safe characters; only its SHA-256 hash
is stored (a high-entropy secret needs no slow hash, as for personal access tokens). Redirect
URIs are compared exactly, character for character (OAuth 2.1 §2.3.1): no prefix, no wildcard,
no normalisation, so a URI an attacker controls can never be made to match.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final
from urllib.parse import urlsplit

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.db.models import OAuthClient, new_id
from control_plane.orgs.service import checked_name
from control_plane.security.secrets import new_secret
from orgplane_wire.problems import BadRequest, NotFound
from orgplane_wire.secret_box import hash_secret, secret_matches

SECRET_PREFIX: Final = "ocs"
#: Scopes a client may be allowed: OpenID Connect's (userinfo claims by scope).
OIDC_SCOPES: Final = ("openid", "profile", "email")
NOT_FOUND: Final = "No such OAuth client."


class ClientType(StrEnum):
    """How a client authenticates at the token endpoint."""

    CONFIDENTIAL = "confidential"  # client_secret_basic or client_secret_post, and PKCE
    PUBLIC = "public"  # PKCE alone (a browser app, a CLI, a mobile app)


def check_redirect_uri(uri: str) -> str:
    """``uri`` if it may be registered: absolute, no fragment (RFC 6749 §3.1.2), https, or
    http on a loopback host (RFC 8252 §7.3, for native apps and tests), no spaces or control
    characters; else 400 ``invalid_redirect_uri``."""
    if any(ord(c) <= 32 or ord(c) == 127 for c in uri):  # spaces and control characters
        raise BadRequest(
            "A redirect URI holds no spaces or control characters.",
            code="invalid_redirect_uri",
            field="redirect_uris",
        )
    parts = urlsplit(uri)
    loopback = parts.hostname in ("127.0.0.1", "::1", "localhost")
    allowed = parts.scheme == "https" or (parts.scheme == "http" and loopback)
    if not allowed or not parts.netloc or parts.fragment or "#" in uri:
        raise BadRequest(
            "A redirect URI is an absolute https URL (http only on a loopback host) without a "
            "fragment.",
            code="invalid_redirect_uri",
            field="redirect_uris",
        )
    return uri


def check_scopes(scopes: list[str]) -> list[str]:
    """The scopes in registration order, each one of :data:`OIDC_SCOPES`; else 400."""
    for scope in scopes:
        if scope not in OIDC_SCOPES:
            raise BadRequest(
                f"Unknown scope {scope!r}; known: {', '.join(OIDC_SCOPES)}.",
                code="invalid_scope",
                field="scopes",
            )
    return list(dict.fromkeys(scopes))


def new_client(
    *,
    name: str,
    client_type: ClientType,
    redirect_uris: list[str],
    scopes: list[str],
    first_party: bool,
    created_by: str,
) -> tuple[OAuthClient, str | None]:
    """A client row (not yet added) and, for a confidential client, its secret."""
    secret = new_secret(SECRET_PREFIX) if client_type is ClientType.CONFIDENTIAL else None
    row = OAuthClient(
        id=f"oc-{new_id()[:20]}",
        name=checked_name(name),
        client_type=client_type.value,
        secret_hash=hash_secret(secret) if secret else "",
        redirect_uris=list(dict.fromkeys(check_redirect_uri(u) for u in redirect_uris)),
        scopes=check_scopes(scopes),
        first_party=first_party,
        created_by=created_by,
    )
    return row, secret


async def list_clients(db: AsyncSession) -> list[OAuthClient]:
    """Every registered client, oldest first."""
    rows = await db.exec(select(OAuthClient).order_by(col(OAuthClient.created_at)))
    return list(rows.all())


async def get_client(db: AsyncSession, client_id: str) -> OAuthClient | None:
    """The client ``client_id``, or None (also for an id too long to be one)."""
    if not client_id or len(client_id) > 64:
        return None
    return await db.get(OAuthClient, client_id)


async def require_client(db: AsyncSession, client_id: str) -> OAuthClient:
    """The client ``client_id``, or 404 ``oauth_client_not_found``."""
    row = await get_client(db, client_id)
    if row is None:
        raise NotFound(NOT_FOUND, code="oauth_client_not_found")
    return row


def is_public(client: OAuthClient) -> bool:
    """The client has no secret (PKCE is its only proof)."""
    return client.client_type == ClientType.PUBLIC.value


def secret_ok(client: OAuthClient, presented: str | None) -> bool:
    """Whether ``presented`` is the confidential client's secret (constant-time)."""
    if is_public(client) or not presented or not client.secret_hash:
        return False
    return secret_matches(presented, client.secret_hash)
