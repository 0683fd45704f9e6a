"""``/.well-known/openid-configuration`` (OpenID Connect Discovery 1.0 §3): the RFC 8414
document of :func:`control_plane.tokens.discovery.server_metadata` with the OpenID fields
added, so the two never disagree.

ID tokens are signed with RS256, which OpenID Connect requires every provider to offer (Core
§15.1, Discovery §3), by a key of their own in the same JWKS
(:data:`control_plane.signing.keys.ID_TOKEN_ALG`); access and org tokens keep the platform's
algorithm.
"""

from __future__ import annotations

from typing import Any

from litestar import Response, get

from control_plane.deps import RuntimeDep
from control_plane.runtime import Runtime
from control_plane.signing.keys import ID_TOKEN_ALG
from control_plane.tokens.discovery import USERINFO_PATH, server_metadata

#: Claims of the ID token and userinfo, on top of those of access and org tokens.
OIDC_CLAIMS = ("auth_time", "nonce", "amr", "azp", "email", "email_verified", "name")


def openid_configuration(runtime: Runtime) -> dict[str, Any]:
    """The OpenID Provider metadata of this control plane."""
    meta = server_metadata(runtime)
    return {
        **meta,
        "userinfo_endpoint": runtime.issuer + USERINFO_PATH,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [ID_TOKEN_ALG],
        "claims_supported": [*meta["claims_supported"], *OIDC_CLAIMS],
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        # Discovery's default is true: say that request_uri is not taken.
        "request_uri_parameter_supported": False,
    }


@get("/.well-known/openid-configuration", tags=["discovery"], sync_to_thread=False)
def openid_configuration_document(runtime: RuntimeDep) -> Response[dict[str, Any]]:
    """The OpenID Provider configuration (OpenID Connect Discovery 1.0)."""
    seconds = runtime.settings.tokens.jwks_cache_seconds
    return Response(
        openid_configuration(runtime), headers={"Cache-Control": f"public, max-age={seconds}"}
    )


ROUTES = [openid_configuration_document]
