"""The control plane's OpenAPI document, made truthful about errors and credentials.

Litestar derives operations from the route handlers; this module adds what it cannot see:

* every operation declares its error answers as ``application/problem+json`` with the
  ``Problem`` schema of :mod:`orgplane_wire.problem_schema` (RFC 9457 plus our ``code``; both
  services answer that shape), through the handlers' own ``responses`` (Litestar's default 400 is a
  different JSON shape we never send, so it is replaced); the token endpoint's 400/401 are
  RFC 6749 JSON and declared so;
* the security schemes (``bearerAuth`` JWT access token, ``sessionCookie`` for safe methods,
  ``instanceCredential``, ``routingToken`` and ``metricsToken``) and, on each operation,
  which of them it takes.

Which operations need a caller is read from the handlers: those taking the ``principal``
dependency, or ``actor`` or ``access``, which depend on it. ``tests/conformance/test_openapi.py``
checks the document against the live answers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Components, SecurityScheme

from orgplane_wire.problem_schema import declare_errors, documented_operations, problem_spec

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass
class OAuthError:
    """An error of the token endpoint (RFC 6749 §5.2), which is not a problem document."""

    error: str
    error_description: str | None = None


SECURITY_SCHEMES: dict[str, Any] = {
    "bearerAuth": SecurityScheme(
        type="http",
        scheme="bearer",
        bearer_format="JWT",
        description="An access token from POST /api/v1/auth/login or /oauth/token.",
    ),
    "sessionCookie": SecurityScheme(
        type="apiKey",
        name="orgplane_session",
        security_scheme_in="cookie",
        description="The UI's session cookie; accepted on safe methods (GET, HEAD) only.",
    ),
    "instanceCredential": SecurityScheme(
        type="http", scheme="bearer", description="An org instance's credential (opi_...)."
    ),
    "routingToken": SecurityScheme(
        type="http", scheme="bearer", description="The routing token (ORGPLANE_ROUTING_TOKEN)."
    ),
    "metricsToken": SecurityScheme(
        type="http", scheme="bearer", description="The metrics token (ORGPLANE_METRICS_TOKEN)."
    ),
}

#: Operations that authenticate a credential of their own (not the ``principal`` dependency).
OWN_CREDENTIAL = {
    "/api/v1/instances/heartbeat": "instanceCredential",
    "/api/v1/routing/traefik": "routingToken",
    "/api/v1/routing/prometheus": "routingToken",
    "/metrics": "metricsToken",
    "/oauth/introspect": "bearerAuth",
    "/oauth/userinfo": "bearerAuth",  # a client's access token (control_plane.oidc.userinfo)
}


#: Operations that check a password (401 ``invalid_credentials``) or a flood limit (429).
CHECKS_PASSWORD = frozenset({"/api/v1/auth/login", "/api/v1/me/password", "/api/v1/me/email"})
RATE_LIMITED = CHECKS_PASSWORD | {
    "/api/v1/instances/heartbeat",
    "/api/v1/me/mfa/totp",  # the password (and a code) again, counted by the login limits
    "/api/v1/me/mfa/recovery-codes",
    "/api/v1/me/passkeys/registration",  # the password again, counted by the login limits
    "/api/v1/me/passkeys/{passkey_id}",
    "/api/v1/auth/password-reset",
    "/api/v1/me/email-verification",
}
#: One-time email links answer 410 ``link_used`` / ``link_expired``.
ONE_TIME_LINKS = frozenset({"/api/v1/auth/password-reset/confirm", "/api/v1/auth/verify-email"})
#: OAuth endpoints answer their errors as RFC 6749 §5.2 JSON (RFC 7009 and RFC 7662 reuse it),
#: with the statuses each can answer.
OAUTH_ERRORS = {
    "/oauth/token": (400, 401),
    "/oauth/revoke": (400,),
    "/oauth/introspect": (400, 401),
}
#: Sign-up answers 403 ``signup_disabled`` when sign-up is off.
SIGNUP = "/api/v1/auth/signup"
#: A password-reset request answers 403 ``mail_not_configured`` on a platform without SMTP.
MAIL_RESET = "/api/v1/auth/password-reset"
#: Backup routes talk to the org's instance: 409 while it is busy or the backup not ready (reads
#: too), 422 for an archive or confirmation refused. With the backup-key routes (legal hold,
#: shredding), 410 once the org's backups were shredded. (Branding export/import is not one:
#: its document is the control plane's own.)
BACKUP_PARTS = ("/backups", "/export", "/import", "/restore", "/backup-key")
#: Dependencies that need an authenticated caller: ``actor`` and ``access`` depend on
#: ``principal`` (control_plane/actor.py, control_plane/orgs/guards.py).
AUTHENTICATED = frozenset({"principal", "actor", "access"})
#: Reads that need the org's instance: 409 when it has none (or its backend cannot serve them).
INSTANCE_READS = ("/instance/logs",)


def components() -> Components:
    """The components the document declares (schemes; schemas come from the handlers)."""
    return Components(security_schemes=SECURITY_SCHEMES)


def _security(handler: HTTPRouteHandler, path: str) -> list[dict[str, list[str]]] | None:
    if path in OWN_CREDENTIAL:
        return [{OWN_CREDENTIAL[path]: []}]
    if not AUTHENTICATED & set(handler.parsed_fn_signature.parameters):
        return None
    if handler.http_methods <= SAFE_METHODS:
        return [{"bearerAuth": []}, {"sessionCookie": []}]
    return [{"bearerAuth": []}]


def _errors(handler: HTTPRouteHandler, path: str, secured: bool) -> dict[int, ResponseSpec]:
    errors = {
        400: problem_spec("Invalid input (`code` names the rule), or an invalid Host header."),
        503: problem_spec("A store cannot be reached; retry after `Retry-After` seconds."),
    }
    if secured or path in CHECKS_PASSWORD:
        errors[401] = problem_spec("No valid credentials; see WWW-Authenticate.")
    if secured or path in (SIGNUP, MAIL_RESET):
        errors[403] = problem_spec(
            "Not allowed (sign-up disabled, or `mail_not_configured`: no SMTP server)."
        )
    if "{" in path or secured:  # path or query parameters that name an org, user, ...
        errors[404] = problem_spec("Absent, or not visible to the caller.")
    if not handler.http_methods <= SAFE_METHODS:
        errors[409] = problem_spec("A uniqueness or state conflict.")
        errors[413] = problem_spec("The body is larger than ORGPLANE_MAX_BODY_BYTES.")
    if path.endswith(INSTANCE_READS):
        errors[409] = problem_spec("The org has no instance, or its backend cannot read logs.")
    if any(part in path for part in BACKUP_PARTS) and "/branding/" not in path:
        errors[409] = problem_spec(
            "The instance is busy, the backup is not ready, the org is under legal hold or not "
            "deleted (shredding)."
        )
        errors[410] = problem_spec("The org's backups were shredded (`backup_key_shredded`).")
        errors[422] = problem_spec("The archive, backup, reason or confirmation is refused.")
    if path in ONE_TIME_LINKS:
        errors[410] = problem_spec("The link was used already, or has expired.")
    if path in RATE_LIMITED:
        errors[429] = problem_spec("Rate limited; retry after `Retry-After` seconds.")
    if path in OAUTH_ERRORS:
        errors.pop(409)
        errors.pop(401, None)
        for status in OAUTH_ERRORS[path]:
            errors[status] = ResponseSpec(
                data_container=OAuthError,
                media_type="application/json",
                description="An OAuth error (RFC 6749 §5.2).",
                generate_examples=False,
            )
    return errors


def document(routes: Iterable[Any]) -> None:
    """Declare errors and security on the API operations of ``routes`` (idempotent)."""
    for handler, route_path in documented_operations(routes):
        path = "/" + route_path.strip("/")
        security = _security(handler, path)
        handler.security = security
        declare_errors(handler, _errors(handler, path, secured=security is not None))
