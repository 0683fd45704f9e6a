"""Org-token verification against the control plane's JWKS (PyJWT and httpx).

:meth:`TokenVerifier.verify` runs, in order: size and shape; a header whose ``alg`` is ES256 or
EdDSA, ``typ`` ``at+jwt``, no ``crit``, a plain ``kid``; the key for that ``kid`` from the
cached JWKS (an unknown ``kid`` refetches it, at most once per ``refetch_interval`` and once
for all requests waiting); the signature with that key's own algorithm; ``iss``, ``aud``,
``exp``, ``nbf`` and ``iat`` with a small leeway; ``org_id`` is this org's. Keys come from the
configured JWKS URL only (``jku``, ``x5u``, ``jwk`` and ``x5c`` are never read). Every failure
is :class:`InvalidToken`; its message is for logs, never for clients.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import time
from collections.abc import Callable
from typing import Any, cast

import httpx
import jwt

from orgplane_sdk.contract import ALLOWED_ALGORITHMS, TOKEN_TYP, OrgTokenClaims

MAX_TOKEN_BYTES = 8192
MAX_JWKS_BYTES = 65_536
#: Seconds of clock skew allowed on ``exp``, ``nbf`` and ``iat``.
LEEWAY_SECONDS = 30
#: How long a fetched JWKS is used before it is fetched again (on the next request).
JWKS_MAX_AGE_SECONDS = 300.0
REQUIRED_CLAIMS = ("iss", "aud", "sub", "exp", "iat", "nbf", "org_id", "org_role")
ROLES = frozenset({"owner", "admin", "member"})
_KID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")


class InvalidToken(Exception):
    """Not a valid org token for this org (malformed, forged, expired, another org's...)."""

    code = "invalid_token"


def read_header(token: str) -> dict[str, Any]:
    """The JOSE header of a compact JWS, checked against the contract before any key is used."""
    if not 0 < len(token) <= MAX_TOKEN_BYTES or token.count(".") != 2:
        raise InvalidToken("not a compact JWS of acceptable size")
    segment = token.split(".", 1)[0]
    try:
        if not _SEGMENT.fullmatch(segment):
            raise ValueError("not base64url")
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, binascii.Error):
        raise InvalidToken("malformed header") from None
    if not isinstance(header, dict):
        raise InvalidToken("malformed header")
    if header.get("alg") not in ALLOWED_ALGORITHMS:
        raise InvalidToken("algorithm not allowed")
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() not in (TOKEN_TYP, f"application/{TOKEN_TYP}"):
        raise InvalidToken("wrong token type")
    if "crit" in header:
        raise InvalidToken("critical header parameters are refused")
    kid = header.get("kid")
    if not isinstance(kid, str) or not _KID.fullmatch(kid):
        raise InvalidToken("bad key id")
    return header


def signing_keys(document: Any) -> dict[str, jwt.PyJWK]:
    """The allowlisted public signing keys of a JWKS document, by ``kid``."""
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ValueError("not a JWKS")
    keys: dict[str, jwt.PyJWK] = {}
    for entry in entries[:50]:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig" or "d" in entry:
            continue
        kid, alg = entry.get("kid"), entry.get("alg")
        if not isinstance(kid, str) or not _KID.fullmatch(kid) or alg not in ALLOWED_ALGORITHMS:
            continue
        try:
            keys[kid] = jwt.PyJWK(entry, algorithm=alg)
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            continue
    return keys


class TokenVerifier:
    """Verifies one org's tokens; share one per process (it caches the keys)."""

    def __init__(
        self,
        *,
        jwks_url: str,
        issuer: str,
        audience: str,
        org_id: str,
        http: httpx.AsyncClient | None = None,
        refetch_interval: float = 30.0,
        leeway: int = 5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 <= leeway <= LEEWAY_SECONDS:
            raise ValueError(f"leeway must be 0-{LEEWAY_SECONDS} seconds")
        self.jwks_url, self.issuer, self.audience, self.org_id = jwks_url, issuer, audience, org_id
        self.refetch_interval, self.leeway = refetch_interval, leeway
        self._http, self._owns_http = http, http is None
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")
        self._inflight: asyncio.Task[None] | None = None
        #: Keys retired in an emergency (a revocation names them): never used again.
        self.retired: set[str] = set()
        #: JWKS requests made, successful or not.
        self.fetches = 0
        #: Why the last fetch failed ("" after a success).
        self.last_error = ""

    @property
    def has_keys(self) -> bool:
        """Whether a JWKS was fetched and holds a usable key."""
        return bool(self._keys)

    async def verify(self, token: str) -> OrgTokenClaims:
        """The claims of ``token`` if it is a valid org token for this org."""
        header = read_header(token)
        key = await self._key(header["kid"])
        if key is None:
            raise InvalidToken("unknown key id")
        if key.algorithm_name != header["alg"]:
            raise InvalidToken("algorithm does not match the key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[key.algorithm_name],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except Exception as exc:  # hostile claim values end here, never in a 500
            raise InvalidToken(f"rejected: {type(exc).__name__}") from None
        if claims["org_id"] != self.org_id:
            raise InvalidToken("token of another org")
        if claims["org_role"] not in ROLES or not isinstance(claims["sub"], str):
            raise InvalidToken("bad subject or role")
        return cast(OrgTokenClaims, claims)

    async def refresh(self) -> bool:
        """Fetch the JWKS unless fetched within ``refetch_interval``; True if keys are cached."""
        if self._clock() - self._fetched_at >= self.refetch_interval or self._inflight:
            await asyncio.shield(self._fetch_once())
        return self.has_keys

    def retire(self, kid: str) -> None:
        """Refuse every token signed by ``kid`` from now on, whatever the JWKS says."""
        self.retired.add(kid)
        self._keys.pop(kid, None)

    async def _key(self, kid: str) -> jwt.PyJWK | None:
        if kid in self.retired:
            return None
        age = self._clock() - self._fetched_at
        if kid not in self._keys or age >= JWKS_MAX_AGE_SECONDS:
            await self.refresh()
        return self._keys.get(kid)

    def _fetch_once(self) -> asyncio.Task[None]:
        if self._inflight is None:
            self._fetched_at = self._clock()
            self._inflight = asyncio.create_task(self._fetch())
            self._inflight.add_done_callback(self._fetch_done)
        return self._inflight

    def _fetch_done(self, _: asyncio.Task[None]) -> None:
        self._inflight = None

    async def _fetch(self) -> None:
        self.fetches += 1
        try:
            if self._http is None:
                self._http = httpx.AsyncClient(timeout=5.0, follow_redirects=False)
            async with asyncio.timeout(10):
                answer = await self._http.get(self.jwks_url, headers={"Accept": "application/json"})
            if answer.status_code != 200 or len(answer.content) > MAX_JWKS_BYTES:
                raise ValueError(f"JWKS answered {answer.status_code}, {len(answer.content)} B")
            keys = signing_keys(answer.json())
            self._keys = {kid: key for kid, key in keys.items() if kid not in self.retired}
        except Exception as exc:  # down, slow or garbage: keep the keys we have
            self.last_error = f"{type(exc).__name__}: {exc}"[:200]
            return
        self.last_error = ""

    async def aclose(self) -> None:
        """Stop a fetch in flight; close the HTTP client if the verifier made it."""
        if self._inflight is not None:
            self._inflight.cancel()
        if self._owns_http and self._http is not None:
            await self._http.aclose()
