"""The generic OpenID Connect provider: discovery, authorization code with PKCE (S256), state
and nonce, an ID token verified against the provider's JWKS, and userinfo for missing claims.

The OAuth client is authlib's (its httpx integration); the ID token is verified with joserfc:
signature by a key of the provider's JWKS (fetched at each sign-in, so a rotated key is known
at once), ``iss`` equal to the discovery document's issuer, ``aud`` holding our client id
(``azp`` equal to it when there are several audiences), ``exp`` in the future (60 s leeway),
``nonce`` equal to the one we sent. The discovery document is cached per process for
:data:`DISCOVERY_TTL` seconds.
"""

from __future__ import annotations

import time
import warnings
from typing import Any, Final

import httpx
from authlib.common.errors import AuthlibBaseError
from authlib.deprecate import AuthlibDeprecationWarning
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

from control_plane.sso.base import Attempt, ExternalIdentity, IdentityProvider, SsoError

with warnings.catch_warnings():
    # authlib 1.9 warns that its httpx integration will move to httpx2; httpx is what we have.
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client

DISCOVERY_TTL: Final = 300.0
TIMEOUT: Final = 10.0
LEEWAY: Final = 60
#: Signature algorithms accepted in ID tokens (never ``none``, never HMAC with the secret).
ALGORITHMS: Final = ["RS256", "PS256", "ES256", "ES384", "EdDSA"]
_discovered: dict[str, tuple[float, dict[str, Any]]] = {}


def _unreachable(what: str) -> SsoError:
    return SsoError(
        f"The identity provider could not be reached ({what}); try again later.",
        reason="provider_unreachable",
    )


def _invalid(what: str, *, reason: str = "invalid_id_token") -> SsoError:
    return SsoError(f"The identity provider's answer did not verify: {what}.", reason=reason)


async def _get_json(http: httpx.AsyncClient, url: str, what: str) -> dict[str, Any]:
    try:
        answer = await http.get(url)
        answer.raise_for_status()
        data = answer.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise _unreachable(what) from exc
    if not isinstance(data, dict):
        raise _unreachable(what)
    return data


class OidcProvider(IdentityProvider):
    """Any OpenID Connect provider with a discovery document (Keycloak, Okta, Entra ID...)."""

    async def metadata(self) -> dict[str, Any]:
        """The provider's discovery document (cached for :data:`DISCOVERY_TTL` seconds)."""
        url = self.config.discovery_url
        cached = _discovered.get(url)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        async with httpx.AsyncClient(timeout=TIMEOUT) as http:
            data = await _get_json(http, url, "discovery")
        needed = ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")
        if not all(isinstance(data.get(key), str) for key in needed):
            raise _unreachable("discovery document incomplete")
        _discovered[url] = (time.monotonic() + DISCOVERY_TTL, data)
        return data

    def _client(self, meta: dict[str, Any], redirect_uri: str) -> AsyncOAuth2Client:
        methods = meta.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        auth = "client_secret_basic" if "client_secret_basic" in methods else "client_secret_post"
        return AsyncOAuth2Client(
            self.config.client_id,
            self.config.client_secret,
            token_endpoint_auth_method=auth,
            scope=" ".join(self.config.scopes),
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
            timeout=TIMEOUT,
        )

    async def authorization_url(self, *, attempt: Attempt) -> str:
        meta = await self.metadata()
        client = self._client(meta, attempt.redirect_uri)
        try:
            url, _ = client.create_authorization_url(
                meta["authorization_endpoint"],
                state=attempt.state,
                code_verifier=attempt.code_verifier,
                nonce=attempt.nonce,
            )
        finally:
            await client.aclose()
        return str(url)

    async def complete(self, *, attempt: Attempt, params: dict[str, str]) -> ExternalIdentity:
        if params.get("state") != attempt.state:
            raise SsoError("The sign-in's state does not match; start again.", reason="bad_state")
        if "error" in params:
            raise SsoError(
                "The identity provider did not sign you in.",
                reason="provider_refused",
                code="sso_refused",
            )
        code = params.get("code")
        if not code:
            raise SsoError("The identity provider sent no code.", reason="no_code")
        meta = await self.metadata()
        client = self._client(meta, attempt.redirect_uri)
        try:
            try:
                token = await client.fetch_token(
                    meta["token_endpoint"],
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=attempt.code_verifier,
                )
            except (AuthlibBaseError, httpx.HTTPError, ValueError) as exc:
                raise SsoError(
                    "The identity provider refused the sign-in's code.", reason="token_refused"
                ) from exc
            claims = await self._verified_claims(meta, token, attempt.nonce)
            wanted = ("email", "email_verified", *self.config.claims_needed)
            if any(name not in claims for name in wanted):
                claims = {**await self._userinfo(client, meta, claims["sub"]), **claims}
        finally:
            await client.aclose()
        return _identity(claims)

    async def _verified_claims(
        self, meta: dict[str, Any], token: dict[str, Any], nonce: str
    ) -> dict[str, Any]:
        raw = token.get("id_token")
        if not isinstance(raw, str):
            raise _invalid("no ID token")
        async with httpx.AsyncClient(timeout=TIMEOUT) as http:
            jwks = await _get_json(http, meta["jwks_uri"], "keys")
        try:
            decoded = jwt.decode(raw, KeySet.import_key_set(jwks), algorithms=ALGORITHMS)  # type: ignore[arg-type]
            JWTClaimsRegistry(
                leeway=LEEWAY,
                iss={"essential": True, "value": meta["issuer"]},
                aud={"essential": True, "value": self.config.client_id},
                exp={"essential": True},
                sub={"essential": True},
                nonce={"essential": True, "value": nonce},
            ).validate(decoded.claims)
        except (JoseError, ValueError, TypeError) as exc:
            reason = "bad_nonce" if "nonce" in str(exc) else "invalid_id_token"
            what = getattr(exc, "error", "") or "signature or claims"
            raise _invalid(what, reason=reason) from exc
        claims = dict(decoded.claims)
        aud = claims.get("aud")
        if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != self.config.client_id:
            raise _invalid("azp")
        return claims

    async def _userinfo(
        self, client: AsyncOAuth2Client, meta: dict[str, Any], subject: str
    ) -> dict[str, Any]:
        endpoint = meta.get("userinfo_endpoint")
        if not isinstance(endpoint, str):
            return {}
        try:
            answer = await client.get(endpoint)
            answer.raise_for_status()
            info = answer.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise _unreachable("userinfo") from exc
        if not isinstance(info, dict) or info.get("sub") != subject:
            raise _invalid("userinfo is of another subject", reason="invalid_userinfo")
        return info


def _identity(claims: dict[str, Any]) -> ExternalIdentity:
    email = claims.get("email")
    amr = claims.get("amr")
    return ExternalIdentity(
        subject=str(claims["sub"]),
        email=email.strip().lower() if isinstance(email, str) else "",
        email_verified=claims.get("email_verified") is True,
        name=str(claims.get("name") or "")[:200],
        amr=tuple(m for m in amr if isinstance(m, str)) if isinstance(amr, list) else (),
        acr=str(claims.get("acr") or ""),
        claims=claims,
    )
