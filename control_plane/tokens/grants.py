"""OAuth 2.0 names the token endpoint speaks, and its error (RFC 6749 §5.2, RFC 8693 §2.2.2).

OAuthError(error, description)   answered as ``{"error", "error_description"}``, 400
├── invalid_request        missing/repeated/unsupported parameter, or an invalid
│                          subject_token (RFC 8693 §2.2.2 says so for token exchange)
├── invalid_client         a client we do not know (401)
├── invalid_grant          refresh token unknown, expired, revoked or already used
├── invalid_target         no such org, or not one the caller may enter (one answer)
├── invalid_scope          a scope beyond what the caller's role allows
└── unsupported_grant_type anything but refresh_token and token exchange
"""

from __future__ import annotations

from typing import Any, Final

from litestar.datastructures import FormMultiDict

REFRESH_TOKEN_GRANT: Final = "refresh_token"
TOKEN_EXCHANGE_GRANT: Final = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE: Final = "urn:ietf:params:oauth:token-type:access_token"
JWT_TOKEN_TYPE: Final = "urn:ietf:params:oauth:token-type:jwt"
#: A personal access token (``opat_…``) as the subject of a token exchange. Sending one with
#: ``ACCESS_TOKEN_TYPE`` works too: to RFC 8693 it is an (opaque) access token of this server.
PERSONAL_TOKEN_TYPE: Final = "urn:orgplane:params:oauth:token-type:personal-access-token"
#: Form field in which a platform admin states why they enter an org they are not a member of.
REASON_PARAM: Final = "orgplane_reason"


class OAuthError(Exception):
    """An error of the token endpoint, in OAuth's own format (not problem+json)."""

    def __init__(
        self,
        error: str,
        description: str,
        *,
        status: int = 400,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status
        self.headers = headers or {}
        self.extra = extra

    def body(self) -> dict[str, Any]:
        """The JSON answer."""
        return {"error": self.error, "error_description": self.description, **self.extra}


#: Parameters that may appear more than once (RFC 8693 §2.1); all others at most once.
MULTI_VALUED = frozenset({"audience", "resource"})


class Params:
    """The form parameters of one request, checked for repeats."""

    def __init__(self, form: FormMultiDict) -> None:
        self._form = form
        for name in set(form.keys()):
            if name not in MULTI_VALUED and len(form.getall(name)) > 1:
                raise OAuthError("invalid_request", f"The parameter {name} is repeated.")

    def get(self, name: str) -> str | None:
        """The value of ``name``, or None when absent or empty."""
        value = self._form.get(name)
        return value if isinstance(value, str) and value else None

    def all(self, name: str) -> tuple[str, ...]:
        """Every non-empty value of a multi-valued parameter."""
        values = self._form.getall(name, [])
        return tuple(v for v in values if isinstance(v, str) and v)

    def require(self, name: str) -> str:
        """The value of ``name``, or ``invalid_request``."""
        value = self.get(name)
        if value is None:
            raise OAuthError("invalid_request", f"The parameter {name} is required.")
        return value
