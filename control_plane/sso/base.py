"""The identity-provider contract: what an implementation (``oidc``, or a third party's) does.

An implementation is a class registered in the ``orgplane.identity_providers`` entry-point
group (:mod:`control_plane.sso.registry`), built once per sign-in from the provider's
configuration. A sign-in is two calls, one on each side of the browser's trip to the provider:

1. :meth:`IdentityProvider.authorization_url` before the redirect;
2. :meth:`IdentityProvider.complete` with what the provider sent back to the callback.

Errors are :class:`SsoError` (a 401 ``sso_failed`` problem with a reason code): the provider
could not be reached, refused, or sent something that does not verify.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from orgplane_wire.problems import Unauthenticated


class SsoError(Unauthenticated):
    """A sign-in through a provider that did not succeed; ``reason`` says why (stable)."""

    code = "sso_failed"

    def __init__(self, detail: str, *, reason: str, code: str | None = None) -> None:
        super().__init__(detail, code=code, reason=reason)
        self.reason = reason


@dataclass(frozen=True)
class ProviderConfig:
    """What a platform admin configured (the secret decrypted)."""

    slug: str
    discovery_url: str
    client_id: str
    client_secret: str
    scopes: tuple[str, ...]
    #: Top-level claims the provider's rules read: asked of userinfo when the ID token lacks one.
    claims_needed: tuple[str, ...] = ()


@dataclass(frozen=True)
class Attempt:
    """The secrets of one sign-in, kept by the browser (encrypted) between the two calls."""

    state: str
    nonce: str
    code_verifier: str
    redirect_uri: str


@dataclass(frozen=True)
class ExternalIdentity:
    """Who the provider says signed in: verified claims only."""

    #: The provider's stable identifier of the account (``sub``).
    subject: str
    #: Lower-cased email, or "" when the provider gave none.
    email: str
    #: True only when the provider said ``email_verified: true``.
    email_verified: bool
    name: str = ""
    #: RFC 8176 methods the provider used (its ``amr``), and its ``acr``.
    amr: tuple[str, ...] = ()
    acr: str = ""
    #: Every claim (ID token merged with userinfo), for the claim-mapping rules.
    claims: dict[str, Any] = field(default_factory=dict)


class IdentityProvider(ABC):
    """One configured provider. Instances are cheap and short-lived (one per request)."""

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config

    @abstractmethod
    async def authorization_url(self, *, attempt: Attempt) -> str:
        """Where to send the browser to sign in, carrying ``attempt``'s state, nonce and PKCE
        challenge. Raises :class:`SsoError` (reason ``provider_unreachable``) when the
        provider's metadata cannot be fetched."""

    @abstractmethod
    async def complete(self, *, attempt: Attempt, params: dict[str, str]) -> ExternalIdentity:
        """Finish the sign-in from the callback's query ``params``: check that they answer
        ``attempt`` (its state), redeem the code (with the PKCE verifier), verify the ID token
        (signature against the provider's keys, issuer, audience, expiry, nonce) and answer
        the identity. Never trusts a claim that did not verify. Raises :class:`SsoError`."""
