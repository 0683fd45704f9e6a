"""``POST /oauth/token``: the OAuth 2.0 token endpoint (RFC 6749 §3.2).

Form-encoded requests, JSON answers with ``Cache-Control: no-store``; errors are OAuth error
JSON (:mod:`control_plane.tokens.grants`), not problem+json, so standard clients understand
them. Grants:

* ``authorization_code``: a registered client redeems a code of ``/oauth/authorize`` for an
  access token and an ID token (:mod:`control_plane.oidc.token_grant`, which authenticates
  the client);
* ``refresh_token``: spend a refresh token for a new access token and a new refresh token;
  presenting a spent one revokes its whole family.
* ``urn:ietf:params:oauth:grant-type:token-exchange``: an access token for an org token
  (:mod:`control_plane.tokens.exchange`).

For the other two grants the client is the platform's own public one: a ``client_id`` may be
sent and must then be ``orgplane``; client credentials are refused with ``invalid_client``.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import unquote_plus

from litestar import Request, Response, post
from litestar.status_codes import HTTP_200_OK
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.client_ip import client_ip
from control_plane.deps import RuntimeDep
from control_plane.oidc.token_grant import AUTHORIZATION_CODE_GRANT, authorization_code_grant
from control_plane.runtime import Runtime
from control_plane.tokens.access import CLIENT_ID, RefreshRefused, rotate_refresh
from control_plane.tokens.discovery import TOKEN_PATH
from control_plane.tokens.exchange import ExchangeRequest, exchange_token
from control_plane.tokens.grants import (
    REASON_PARAM,
    REFRESH_TOKEN_GRANT,
    TOKEN_EXCHANGE_GRANT,
    OAuthError,
    Params,
)
from control_plane.webhooks.signals import claimed_subject, count_refusal

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
FORM = "application/x-www-form-urlencoded"


def _oauth_answer(
    body: dict[str, Any], status: int = HTTP_200_OK, headers: dict[str, str] | None = None
) -> Response[dict[str, Any]]:
    return Response(
        body,
        status_code=status,
        headers={**NO_STORE, **(headers or {})},
        media_type="application/json",
    )


def _basic_client(header: str) -> str | None:
    """The client id of ``Basic base64(client_id:)``; public clients have an empty secret."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
        client_id, _, secret = decoded.partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return unquote_plus(client_id) if not secret else None


def _check_client(request: Request[Any, Any, Any], params: Params) -> None:
    header = request.headers.get("authorization")
    if header is not None and _basic_client(header) != CLIENT_ID:
        raise OAuthError(
            "invalid_client",
            f"Unknown client; public clients send client_id={CLIENT_ID} and no secret.",
            status=401,
            headers={"WWW-Authenticate": 'Basic realm="orgplane"'},
        )
    client_id = params.get("client_id")
    if (client_id is not None and client_id != CLIENT_ID) or params.get("client_secret"):
        raise OAuthError(
            "invalid_client",
            f"Unknown client; public clients send client_id={CLIENT_ID} and no secret.",
            status=401,
        )


async def oauth_params(request: Request[Any, Any, Any], *, own_client: bool = True) -> Params:
    """The request's form parameters; with ``own_client``, checked to come from the
    platform's own public client (the registered clients of the authorization-code grant
    authenticate in :mod:`control_plane.oidc.token_grant`)."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != FORM:
        raise OAuthError("invalid_request", f"Send the parameters as {FORM}.")
    params = Params(await request.form())
    if own_client:
        _check_client(request, params)
    return params


async def _refresh(runtime: Runtime, db: AsyncSession, params: Params) -> dict[str, Any]:
    try:
        _, pair = await rotate_refresh(runtime, db, params.require("refresh_token"))
    except RefreshRefused:
        raise OAuthError(
            "invalid_grant", "The refresh token is invalid, expired, revoked or already used."
        ) from None
    return {
        "access_token": pair.access_token,
        "token_type": "Bearer",
        "expires_in": pair.expires_in,
        "refresh_token": pair.refresh_token,
    }


async def _exchange(
    request: Request[Any, Any, Any], runtime: Runtime, db: AsyncSession, params: Params
) -> dict[str, Any]:
    exchange = ExchangeRequest(
        subject_token=params.require("subject_token"),
        subject_token_type=params.require("subject_token_type"),
        audience=params.all("audience"),
        resource=params.all("resource"),
        requested_token_type=params.get("requested_token_type"),
        scope=params.get("scope"),
        reason=params.get(REASON_PARAM),
        ip=client_ip(request),
    )
    return (await exchange_token(runtime, db, request=exchange)).answer()


@post(TOKEN_PATH, status_code=HTTP_200_OK, tags=["tokens"])
async def token_endpoint(
    request: Request[Any, Any, Any], runtime: RuntimeDep
) -> Response[dict[str, Any]]:
    """Redeem an authorization code, refresh a login, or exchange an access token for an org
    token (RFC 6749, RFC 8693).

    A refresh spends a token, so it runs in a transaction. An exchange only reads (a staff
    entry adds one audit row, a single statement), so it runs outside one: the org switch is
    the hottest write-free path, and that saves it two round trips.
    """
    grant = ""
    try:
        params = await oauth_params(request, own_client=False)
        grant = params.require("grant_type")
        if grant == AUTHORIZATION_CODE_GRANT:
            async with runtime.sessions() as db:
                body = await authorization_code_grant(request, runtime, db, params)
        elif grant == REFRESH_TOKEN_GRANT:
            _check_client(request, params)
            async with runtime.sessions() as db:
                body = await _refresh(runtime, db, params)
        elif grant == TOKEN_EXCHANGE_GRANT:
            _check_client(request, params)
            async with runtime.readers() as db:
                body = await _exchange(request, runtime, db, params)
        else:
            raise OAuthError(
                "unsupported_grant_type",
                "Use authorization_code, refresh_token or token exchange.",
            )
    except OAuthError as exc:
        if runtime.metrics is not None:
            runtime.metrics.token_request(grant, refused=exc.error)
        if grant == TOKEN_EXCHANGE_GRANT:
            subject = claimed_subject(params.get("subject_token"))
            ip = client_ip(request)
            await count_refusal(runtime, kind="token_exchange", ip=ip, user_id=subject)
        return _oauth_answer(exc.body(), exc.status, exc.headers)
    if runtime.metrics is not None:
        runtime.metrics.token_request(grant)
    return _oauth_answer(body)


ROUTES = [token_endpoint]
