"""The ``WWW-Authenticate`` challenge of a control-plane 401 (RFC 9110 §11.6.1, RFC 6750 §3).

Every 401 carries one. A request that presented a Bearer token gets
``Bearer realm="orgplane", error="invalid_token"`` (the token was missing something, expired or
unknown); a request that presented none gets the bare ``Bearer realm="orgplane"`` (RFC 6750 §3.1:
no error code when the request lacked authentication). A challenge a route set itself (HTTP
Basic for the token endpoint's ``invalid_client``) is kept.
"""

from __future__ import annotations

from collections.abc import Mapping

REALM = "orgplane"


def bearer_challenge(
    headers: Mapping[str, str], *, authorization: str, description: str = ""
) -> dict[str, str]:
    """``headers`` with a ``WWW-Authenticate`` challenge added unless it has one."""
    if any(name.lower() == "www-authenticate" for name in headers):
        return dict(headers)
    scheme, _, token = authorization.partition(" ")
    challenge = f'Bearer realm="{REALM}"'
    if scheme.lower() == "bearer" and token.strip():
        challenge += ', error="invalid_token"'
        if description:
            # RFC 6750 §3: error_description is %x20-21 / %x23-5B / %x5D-7E (no quote, backslash).
            safe = "".join(c for c in description if 0x20 <= ord(c) <= 0x7E and c not in '"\\')
            challenge += f', error_description="{safe}"'
    return {**headers, "WWW-Authenticate": challenge}
