"""Discovery: ``/.well-known/jwks.json`` and the authorization-server metadata (RFC 8414).

Any standard client finds the issuer, the signing keys and the endpoints at
``/.well-known/oauth-authorization-server``; OpenID Connect clients read the same document,
with the OIDC fields added, at ``/.well-known/openid-configuration``
(:mod:`control_plane.oidc.discovery`). The JWKS carries public members only and may be cached
for ``jwks_cache_seconds``: rotation publishes a new key at least that long before it signs.
"""

from __future__ import annotations

from typing import Any

from litestar import Response, get

from control_plane.deps import DB, RuntimeDep
from control_plane.runtime import Runtime
from control_plane.tokens.grants import REFRESH_TOKEN_GRANT, TOKEN_EXCHANGE_GRANT

JWKS_PATH = "/.well-known/jwks.json"
TOKEN_PATH = "/oauth/token"
REVOCATION_PATH = "/oauth/revoke"
INTROSPECTION_PATH = "/oauth/introspect"
AUTHORIZE_PATH = "/oauth/authorize"
USERINFO_PATH = "/oauth/userinfo"
AUTHORIZATION_CODE_GRANT = "authorization_code"


def _cached(body: dict[str, Any], seconds: int) -> Response[dict[str, Any]]:
    return Response(body, headers={"Cache-Control": f"public, max-age={seconds}"})


def server_metadata(runtime: Runtime) -> dict[str, Any]:
    """The authorization-server metadata of this control plane."""
    issuer = runtime.issuer
    return {
        "issuer": issuer,
        "jwks_uri": issuer + JWKS_PATH,
        "authorization_endpoint": issuer + AUTHORIZE_PATH,
        "token_endpoint": issuer + TOKEN_PATH,
        "revocation_endpoint": issuer + REVOCATION_PATH,
        "revocation_endpoint_auth_methods_supported": ["none"],
        "introspection_endpoint": issuer + INTROSPECTION_PATH,
        # RFC 7662 wants the caller authorized: a control-plane access token (Bearer).
        "introspection_endpoint_auth_methods_supported": ["bearer"],
        "grant_types_supported": [
            AUTHORIZATION_CODE_GRANT,
            REFRESH_TOKEN_GRANT,
            TOKEN_EXCHANGE_GRANT,
        ],
        # "none": the CLI, the UI and public registered clients (PKCE); secrets: confidential
        # registered clients (authorization_code only).
        "token_endpoint_auth_methods_supported": [
            "none",
            "client_secret_basic",
            "client_secret_post",
        ],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": True,
        "scopes_supported": [
            "openid",
            "profile",
            "email",
            "orgplane",
            "org:read",
            "org:write",
            "org:admin",
            "org:owner",
        ],
        "claims_supported": [
            "iss",
            "sub",
            "aud",
            "exp",
            "iat",
            "nbf",
            "jti",
            "client_id",
            "scope",
            "org_id",
            "org_slug",
            "org_role",
            "plan",
            "features",
            "act",
        ],
    }


@get(JWKS_PATH, tags=["discovery"])
async def jwks(runtime: RuntimeDep, db: DB) -> Response[dict[str, Any]]:
    """The public signing keys (JWK Set), cacheable for ``jwks_cache_seconds``."""
    keys = await runtime.keyring.jwks(db)
    return _cached(keys, runtime.settings.tokens.jwks_cache_seconds)


@get("/.well-known/oauth-authorization-server", tags=["discovery"], sync_to_thread=False)
def oauth_authorization_server(runtime: RuntimeDep) -> Response[dict[str, Any]]:
    """Issuer, JWKS and token endpoint (RFC 8414 authorization-server metadata)."""
    return _cached(server_metadata(runtime), runtime.settings.tokens.jwks_cache_seconds)


ROUTES = [jwks, oauth_authorization_server]
