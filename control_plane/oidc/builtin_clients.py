"""The platform's own OAuth clients, which nobody registers: each org instance, and the CLI.

* **An org instance** is the confidential client ``oi-<org id>``. Its redirect URIs are computed
  here from the org, never supplied by the tenant: ``{org origin}/auth/callback`` (the org's
  host under the base domain, with the embedded port when the control plane routes org hosts
  itself) and ``https://{domain}/auth/callback`` for each verified custom domain. It
  authenticates at the token endpoint with the credential it already holds for heartbeats
  (``client_secret_basic`` or ``client_secret_post``): no second long-lived secret exists. It
  is first party (no consent page), and its token answer is an org token for its own org only,
  minted by the RFC 8693 exchange's rules (membership, role, MFA requirement, suspension), plus
  an ID token (:mod:`control_plane.oidc.instance_grant`).
* **The CLI** is the public client :data:`CLI_CLIENT_ID` (``orgplane login --sso``). Its
  redirect URI is any loopback ``http://127.0.0.1:<port>/...`` or ``http://[::1]:<port>/...``
  (RFC 8252 §7.3: the port is chosen when the CLI starts); PKCE is its proof. Its token answer
  is the same session a password login starts (access and refresh token).

Both are built in memory for each request (no row): an org's hosts change with its domains.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.db.models import Domain, OAuthClient, Org
from control_plane.oidc.clients import OIDC_SCOPES, ClientType, get_client
from control_plane.orgs.hierarchy import is_live
from control_plane.routing.org_urls import org_origin
from control_plane.settings import Settings
from orgplane_wire.contract import SIGN_IN_CALLBACK_PATH, instance_client_id

INSTANCE_PREFIX: Final = instance_client_id("")
CLI_CLIENT_ID: Final = "orgplane-cli"
#: Where an instance's browser sign-in comes back (``org_instance.browser_auth``).
CALLBACK_PATH: Final = SIGN_IN_CALLBACK_PATH
_LOOPBACK: Final = ("127.0.0.1", "::1")


def instance_org_id(client_id: str) -> str | None:
    """The org id an instance client id names, or None for any other client."""
    if client_id.startswith(INSTANCE_PREFIX) and len(client_id) <= 64:
        return client_id[len(INSTANCE_PREFIX) :] or None
    return None


def is_cli(client: OAuthClient) -> bool:
    """The client is the CLI's built-in one."""
    return client.id == CLI_CLIENT_ID


async def instance_redirect_uris(settings: Settings, db: AsyncSession, org: Org) -> list[str]:
    """The org's callback URIs: its host under the base domain, then its verified domains."""
    uris = [org_origin(settings, org.slug) + CALLBACK_PATH]
    domains = await db.exec(
        select(Domain.hostname).where(col(Domain.org_id) == org.id, col(Domain.verified))
    )
    uris += [f"https://{host}{CALLBACK_PATH}" for host in sorted(domains.all())]
    return uris


def _builtin(client_id: str, name: str, kind: ClientType, uris: list[str]) -> OAuthClient:
    return OAuthClient(
        id=client_id,
        name=name,
        client_type=kind.value,
        redirect_uris=uris,
        scopes=list(OIDC_SCOPES),
        first_party=True,
    )


async def find_client(settings: Settings, db: AsyncSession, client_id: str) -> OAuthClient | None:
    """The client ``client_id``: an org's instance (a live org), the CLI, or a registered one."""
    if client_id == CLI_CLIENT_ID:
        return _builtin(CLI_CLIENT_ID, "orgplane CLI", ClientType.PUBLIC, [])
    org_id = instance_org_id(client_id)
    if org_id is None:
        return await get_client(db, client_id)
    org = await db.get(Org, org_id)
    if org is None or not is_live(org):
        return None
    uris = await instance_redirect_uris(settings, db, org)
    return _builtin(client_id, org.name, ClientType.CONFIDENTIAL, uris)


def redirect_allowed(client: OAuthClient, uri: str) -> bool:
    """Whether ``uri`` is one of the client's redirect URIs: exactly (OAuth 2.1 §2.3.1), or for
    the CLI any loopback IP literal, port and path over http (RFC 8252 §7.3, §8.3)."""
    if not is_cli(client):
        return uri in client.redirect_uris
    if any(ord(c) <= 32 or ord(c) == 127 for c in uri) or "#" in uri or len(uri) > 500:
        return False
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        return False
    return parts.scheme == "http" and parts.hostname in _LOOPBACK and port is not None
