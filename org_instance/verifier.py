"""Verifying org tokens against the control plane's JWKS (PyJWT + httpx, nothing else).

Signatures and claims are checked by :data:`orgplane_wire.jws.JWT`: PyJWT with a faster segment
check, the same one the control plane verifies its own tokens with.

Every check that needs no key runs first (:func:`orgplane_wire.jose_header.check_header`, the
same one the control plane runs: length, algorithm allowlist, ``typ``, no ``crit``, ``kid``
shape), so a forged token costs no network traffic. Keys are cached for the JWKS's Cache-Control
``max-age``; an unknown ``kid`` triggers at most one refetch per ``refetch_interval``, shared by
every request waiting for it. When the control plane is unreachable the cached keys keep
serving. ``jku``, ``x5u``, ``jwk`` and ``x5c`` headers are never looked at: keys come only from
the configured JWKS URL.

A token that verified is remembered (bounded, until it expires), so a client reusing its token
costs one signature check, not one per request. The memory is dropped whenever a fetched JWKS
differs from the cached one, so a key the control plane withdraws stops working at the same
moment with or without it.

Every failure is one :class:`InvalidToken` with the stable code ``invalid_token``; its
``reason`` is for logs, never for clients.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx

from orgplane_wire.contract import ALLOWED_ALGORITHMS
from orgplane_wire.jose_header import (
    KID_PATTERN,
    MAX_TOKEN_BYTES,
    InvalidToken,
    check_header,
)

if TYPE_CHECKING:
    import jwt

MAX_JWKS_BYTES = 65_536
MAX_KEYS = 50
LEEWAY_SECONDS = 30
DEFAULT_CACHE_SECONDS = 300.0
MAX_CACHE_SECONDS = 86_400.0
REQUIRED_CLAIMS = ("iss", "aud", "sub", "exp", "iat", "nbf", "org_id", "org_role")
ROLES = frozenset({"owner", "admin", "member"})
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d{1,10})\"?\s*(?:,|$)", re.IGNORECASE)
MAX_REMEMBERED = 1024
#: Loaded by the first token to verify (:func:`load_key`), not at start.
FIRST_TOKEN_MODULES = ("jwt", "orgplane_wire.jws")


def cache_seconds(cache_control: str | None) -> float:
    """Lifetime of a JWKS answer from its Cache-Control header (default when absent)."""
    if not cache_control:
        return DEFAULT_CACHE_SECONDS
    lowered = cache_control.lower()
    if "no-store" in lowered or "no-cache" in lowered:
        return 0.0
    match = _MAX_AGE.search(lowered)
    if match is None:
        return DEFAULT_CACHE_SECONDS
    return min(float(match.group(1)), MAX_CACHE_SECONDS)


def select_jwks_entries(document: bytes) -> dict[str, dict[str, Any]]:
    """The JWKS entries that may be signing keys, by kid: public, allowlisted, ``use`` "sig".

    Their key material is not read here (see :func:`load_key`); ValueError for a document
    that is not a JWKS at all."""
    try:
        data = json.loads(document)
    except ValueError as exc:
        raise ValueError("JWKS is not JSON") from exc
    entries = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ValueError("JWKS has no key list")
    selected: dict[str, dict[str, Any]] = {}
    for entry in entries[:MAX_KEYS]:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        kid, alg = entry.get("kid"), entry.get("alg")
        if (
            not isinstance(kid, str)
            or not KID_PATTERN.fullmatch(kid)
            or alg not in ALLOWED_ALGORITHMS
        ):
            continue
        if "d" in entry:  # a private key published by mistake is not trusted either
            continue
        selected[kid] = entry
    return selected


def load_key(entry: dict[str, Any]) -> jwt.PyJWK | None:
    """The key of a selected JWKS entry, or None when its key material is unusable."""
    # PyJWT loads cryptography (~10 MB resident, 45-75 ms of CPU measured at start-up): an
    # instance pays that at its first token, not at start (benchmarks/bench_instance.py).
    import jwt

    try:
        return jwt.PyJWK(entry, algorithm=entry["alg"])
    except (jwt.PyJWTError, ValueError, TypeError, KeyError):
        return None


def parse_jwks(document: bytes) -> dict[str, jwt.PyJWK]:
    """Usable signing keys by kid; entries that are not allowlisted signing keys are skipped."""
    keys = {kid: load_key(entry) for kid, entry in select_jwks_entries(document).items()}
    return {kid: key for kid, key in keys.items() if key is not None}


def kid_of(token: str) -> str:
    """The ``kid`` header of a token (unverified; "" when unreadable)."""
    try:
        segment = token.split(".", 1)[0]
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
        return str(header.get("kid", ""))
    except (ValueError, binascii.Error, AttributeError):
        return ""


class JWKSVerifier:
    """Verifies org tokens for one org against one JWKS URL."""

    def __init__(
        self,
        *,
        jwks_url: str,
        issuer: str,
        audience: str,
        org_id: str,
        refetch_interval: float = 30.0,
        http: httpx.AsyncClient | None = None,
        fetch_timeout: float = 5.0,
        leeway: int = LEEWAY_SECONDS,
        max_token_bytes: int = MAX_TOKEN_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 <= leeway <= LEEWAY_SECONDS:
            raise ValueError(f"leeway must be between 0 and {LEEWAY_SECONDS} seconds")
        self.jwks_url, self.issuer, self.audience, self.org_id = jwks_url, issuer, audience, org_id
        self.refetch_interval = refetch_interval
        self.fetch_timeout = fetch_timeout
        self.leeway = leeway
        self.max_token_bytes = max_token_bytes
        self._clock = clock
        self._http = http
        self._owns_http = http is None
        #: Signing-key entries of the last good JWKS, by kid; each loaded when first needed.
        self._entries: dict[str, dict[str, Any]] = {}
        self._keys: dict[str, jwt.PyJWK | None] = {}
        self._fresh_until = float("-inf")
        self._last_fetch = float("-inf")
        self._inflight: asyncio.Task[None] | None = None
        self._jwks_document = b""
        self._verified: OrderedDict[str, dict[str, Any]] = OrderedDict()
        #: Keys the control plane retired in an emergency: never used again, even if a stale
        #: JWKS still lists them.
        self._retired: set[str] = set()
        #: Outbound JWKS requests made (successful or not); for metrics and tests.
        self.fetches = 0
        #: Why the last fetch failed ("" after a success); for logs and readiness.
        self.last_error = ""

    @property
    def known_kids(self) -> frozenset[str]:
        """Key ids currently cached (whose key material loads)."""
        return frozenset(kid for kid in self._entries if self._loaded(kid) is not None)

    def _loaded(self, kid: str) -> jwt.PyJWK | None:
        """The key ``kid`` of the cached JWKS, loaded on first use (None if absent or unusable)."""
        if kid not in self._keys:
            entry = self._entries.get(kid)
            if entry is None:
                return None
            self._keys[kid] = load_key(entry)
        return self._keys[kid]

    async def verify(self, token: str) -> dict[str, Any]:
        """The claims of a valid org token for this org; raises :class:`InvalidToken`."""
        remembered = self._verified.get(token)
        if remembered is not None:
            self._revalidate_if_stale()
            if remembered["exp"] + self.leeway > time.time():
                return dict(remembered)
            del self._verified[token]
            raise InvalidToken("rejected: ExpiredSignatureError")
        claims = await self._verify_fully(token)
        self._verified[token] = claims
        if len(self._verified) > MAX_REMEMBERED:
            self._verified.popitem(last=False)
        return dict(claims)

    def retire(self, kid: str) -> None:
        """Refuse every token signed by ``kid`` from now on, remembered ones included."""
        self._retired.add(kid)
        self._entries.pop(kid, None)
        self._keys.pop(kid, None)
        for token in [t for t in self._verified if kid_of(t) == kid]:
            del self._verified[token]

    async def _verify_fully(self, token: str) -> dict[str, Any]:
        from orgplane_wire.jws import JWT  # loaded with the first key (see load_key)

        kid, alg = check_header(token, max_bytes=self.max_token_bytes)
        if kid in self._retired:
            raise InvalidToken("retired key")
        key = await self._key_for(kid)
        if key is None:
            raise InvalidToken("unknown key id")
        if key.algorithm_name != alg:
            raise InvalidToken("algorithm does not match the key")
        try:
            claims: dict[str, Any] = JWT.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except Exception as exc:  # hostile claim values must never become a 5xx
            raise InvalidToken(f"rejected: {type(exc).__name__}") from None
        if claims.get("org_id") != self.org_id:
            raise InvalidToken("token is for another org")
        if claims.get("org_role") not in ROLES or not isinstance(claims.get("sub"), str):
            raise InvalidToken("bad subject or role")
        if not isinstance(claims.get("exp"), int | float):
            raise InvalidToken("bad expiry")
        return claims

    def _revalidate_if_stale(self) -> None:
        """Past max-age: keep serving the cached keys and refetch in the background."""
        now = self._clock()
        if now >= self._fresh_until and now - self._last_fetch >= self.refetch_interval:
            self._start_fetch()

    async def _key_for(self, kid: str) -> jwt.PyJWK | None:
        key = self._loaded(kid)
        if key is not None:
            self._revalidate_if_stale()
            return key
        now = self._clock()
        if now - self._last_fetch >= self.refetch_interval or self._inflight is not None:
            await asyncio.shield(self._start_fetch())
        return self._loaded(kid)

    def _start_fetch(self) -> asyncio.Task[None]:
        """The one JWKS fetch in flight, started if none is (concurrent misses share it)."""
        if self._inflight is None:
            self._last_fetch = self._clock()
            self._inflight = asyncio.create_task(self._fetch())
            self._inflight.add_done_callback(self._fetch_done)
        return self._inflight

    def _fetch_done(self, _: asyncio.Task[None]) -> None:
        self._inflight = None

    async def refresh(self) -> bool:
        """Fetch the JWKS now unless the refetch interval forbids it; True if the cached JWKS
        lists signing keys (their key material is read when a token first needs it)."""
        if self._clock() - self._last_fetch >= self.refetch_interval or self._inflight:
            await asyncio.shield(self._start_fetch())
        return bool(self._entries)

    async def _fetch(self) -> None:
        self.fetches += 1
        try:
            document, max_age = await self._download()
            entries = select_jwks_entries(document)
        except Exception as exc:  # down, slow or garbage: keep serving the cached keys
            self.last_error = f"{type(exc).__name__}: {exc}"[:200]
            return
        self.last_error = ""
        if document != self._jwks_document:
            self._verified.clear()  # a withdrawn key must not live on in remembered tokens
            self._jwks_document = document
            self._keys = {}
        self._entries = {kid: e for kid, e in entries.items() if kid not in self._retired}
        self._fresh_until = self._clock() + max(max_age, self.refetch_interval)

    async def _download(self) -> tuple[bytes, float]:
        http = self._client()
        async with asyncio.timeout(self.fetch_timeout):
            async with http.stream(
                "GET", self.jwks_url, headers={"Accept": "application/json"}
            ) as response:
                if response.status_code != 200:
                    raise ValueError(f"JWKS answered {response.status_code}")
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_JWKS_BYTES:
                        raise ValueError("JWKS too large")
                return bytes(body), cache_seconds(response.headers.get("cache-control"))

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self.fetch_timeout, follow_redirects=False)
        return self._http

    async def aclose(self) -> None:
        """Cancel a fetch in flight and close the HTTP client if this verifier made it."""
        if self._inflight is not None:
            self._inflight.cancel()
        if self._owns_http and self._http is not None:
            await self._http.aclose()
