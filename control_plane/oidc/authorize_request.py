"""Checking an authorization request (OAuth 2.1 §4.1.1, OpenID Connect Core §3.1.2.1).

Two kinds of refusal, in this order (RFC 6749 §4.1.2.1):

* :class:`ShownError`: the client is unknown, or the redirect URI is missing or not exactly
  one the client registered. The user sees an error page; the browser is **never** sent to
  the URI, which would make this server an open redirector.
* :class:`RedirectedError`: anything else (response type, PKCE, scope, sizes). The browser
  goes back to the client's redirect URI with ``error``, ``state`` and ``iss`` (RFC 9207).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlencode

from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.db.models import OAuthClient
from control_plane.oidc.builtin_clients import find_client, redirect_allowed
from control_plane.oidc.codes import CHALLENGE
from control_plane.settings import Settings

#: Longest ``state`` and ``nonce`` taken (each ends up in a URL or a token).
MAX_STATE: Final = 500
#: ``prompt`` values (OpenID Connect Core §3.1.2.1) this server acts on; ``login`` is refused
#: with ``login_required`` (the spec's answer when re-authentication cannot be forced) and
#: ``select_account`` is ignored (a browser holds one control-plane session).
PROMPTS: Final = frozenset({"none", "consent", "login", "select_account"})


class ShownError(Exception):
    """A refusal shown to the user, never redirected."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class RedirectedError(Exception):
    """A refusal sent back to the client's (checked) redirect URI."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description


@dataclass(frozen=True)
class AuthRequest:
    """A checked authorization request."""

    client: OAuthClient
    redirect_uri: str
    scope: str
    state: str | None
    nonce: str
    code_challenge: str
    prompt: frozenset[str] = frozenset()

    def hidden_fields(self) -> dict[str, str]:
        """The request as form fields, for the consent form to post back."""
        fields = {
            "client_id": self.client.id,
            "redirect_uri": self.redirect_uri,
            "response_type": "code",
            "scope": self.scope,
            "nonce": self.nonce,
            "code_challenge": self.code_challenge,
            "code_challenge_method": "S256",
        }
        if self.state is not None:
            fields["state"] = self.state
        return {name: value for name, value in fields.items() if value}


def redirect_with(redirect_uri: str, params: dict[str, str]) -> str:
    """``redirect_uri`` with ``params`` added to its query (keeping its own)."""
    joiner = "&" if "?" in redirect_uri else "?"
    return redirect_uri + joiner + urlencode(params)


def _single(get_all: Callable[[str], list[str]], name: str) -> str | None:
    values = get_all(name)
    if len(values) > 1:
        raise RedirectedError("invalid_request", f"The parameter {name} is repeated.")
    return values[0] if values and values[0] else None


async def _client_and_redirect(
    settings: Settings, db: AsyncSession, get_all: Callable[[str], list[str]]
) -> tuple[OAuthClient, str]:
    client_ids, uris = get_all("client_id"), get_all("redirect_uri")
    if len(client_ids) != 1 or len(uris) > 1:
        raise ShownError("The application's request names no client, or names it twice.")
    client = await find_client(settings, db, client_ids[0])
    if client is None:
        raise ShownError("The application that sent you here is not registered.")
    if not uris or not redirect_allowed(client, uris[0]):
        raise ShownError(
            "The application sent you here with a return address it did not register; "
            "nothing was sent back to it."
        )
    return client, uris[0]


def _scope(client: OAuthClient, asked: str | None) -> str:
    scopes = list(dict.fromkeys((asked or "").split()))
    if "openid" not in scopes:
        raise RedirectedError("invalid_scope", "The scope must include openid.")
    beyond = [s for s in scopes if s not in client.scopes]
    if beyond:
        raise RedirectedError("invalid_scope", f"Not allowed for this client: {' '.join(beyond)}.")
    return " ".join(scopes)


async def parse_request(
    settings: Settings, db: AsyncSession, get_all: Callable[[str], list[str]]
) -> AuthRequest:
    """The checked request whose parameters ``get_all`` answers (query or form), or a
    :class:`ShownError` / :class:`RedirectedError`."""
    client, redirect_uri = await _client_and_redirect(settings, db, get_all)
    response_type = _single(get_all, "response_type")
    if response_type != "code":
        raise RedirectedError("unsupported_response_type", "Only response_type=code is supported.")
    challenge = _single(get_all, "code_challenge")
    method = _single(get_all, "code_challenge_method")
    if challenge is None:
        raise RedirectedError("invalid_request", "PKCE is required: send a code_challenge.")
    if method != "S256":
        raise RedirectedError("invalid_request", "Only code_challenge_method=S256 is supported.")
    if not CHALLENGE.fullmatch(challenge):
        raise RedirectedError("invalid_request", "The code_challenge is not an S256 challenge.")
    state, nonce = _single(get_all, "state"), _single(get_all, "nonce")
    if len(state or "") > MAX_STATE or len(nonce or "") > MAX_STATE:
        raise RedirectedError("invalid_request", f"state and nonce are at most {MAX_STATE} long.")
    prompt = frozenset((_single(get_all, "prompt") or "").split())
    if not prompt <= PROMPTS or ("none" in prompt and len(prompt) > 1):
        raise RedirectedError("invalid_request", "prompt is none alone, or consent.")
    if "login" in prompt:
        raise RedirectedError("login_required", "Fresh sign-in on request is not supported.")
    return AuthRequest(
        client=client,
        redirect_uri=redirect_uri,
        scope=_scope(client, _single(get_all, "scope")),
        state=state,
        nonce=nonce or "",
        code_challenge=challenge,
        prompt=prompt,
    )
