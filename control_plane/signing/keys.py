"""Signing keys: creation, encryption at rest, and which key signs and which are published.

A key is *published* (in JWKS) from ``created_at`` until ``expires_at`` and *signs* from
``active_from`` until ``retire_after``. Rotation (``control_plane.tokens.rotation``) creates a
key whose ``active_from`` lies at least one JWKS cache lifetime ahead, so every verifier has seen
it before it signs; the old key stops signing then and stays published until every token it
signed has expired.

Life of a key, as :func:`key_state` names it::

    pending ──> signing ──> retiring ──> retired ──> expired
    (published,  (signs)     (signs until  (published,  (gone from JWKS;
     not signing)             the switch)   verifies     pruned later)
                                            old tokens)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.db.models import SigningKey, new_id, utcnow
from orgplane_wire.secret_box import SecretBox

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
#: The algorithm of ID tokens (control_plane.oidc): OpenID Connect requires providers to offer
#: RS256. Its keys live beside the platform's own, exist once a first OAuth client is
#: registered, and rotate with them; they sign nothing else, and the platform's verifiers
#: (``orgplane_wire.contract.ALLOWED_ALGORITHMS``) never accept them.
ID_TOKEN_ALG = "RS256"


def _generate(alg: str) -> PrivateKey:
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    if alg == ID_TOKEN_ALG:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise ValueError(f"unsupported signing algorithm {alg!r}")


_ALGORITHMS: dict[str, Any] = {
    "ES256": jwt.algorithms.ECAlgorithm,
    "EdDSA": jwt.algorithms.OKPAlgorithm,
    ID_TOKEN_ALG: jwt.algorithms.RSAAlgorithm,
}


def _public_jwk(key: PrivateKey, *, kid: str, alg: str) -> dict[str, Any]:
    algo: Any = _ALGORITHMS[alg]
    jwk: dict[str, Any] = algo.to_jwk(key.public_key(), as_dict=True)
    jwk.pop("key_ops", None)  # RFC 7517 §4.3: not together with "use" (PyJWT adds it for RSA)
    jwk.update(kid=kid, alg=alg, use="sig")
    return jwk


def create_key(box: SecretBox, *, alg: str, active_from: datetime | None = None) -> SigningKey:
    """A new key row (not yet added to a session); it signs from ``active_from`` (default now)."""
    private = _generate(alg)
    kid = f"{utcnow():%Y%m%d}-{new_id()[:12]}"
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    now = utcnow()
    return SigningKey(
        kid=kid,
        alg=alg,
        private_key_enc=box.encrypt(pem),
        public_jwk=_public_jwk(private, kid=kid, alg=alg),
        created_at=now,
        active_from=active_from or now,
    )


@dataclass(frozen=True)
class LoadedKey:
    """A decrypted signing key ready to sign."""

    kid: str
    alg: str
    private_key: PrivateKey


@dataclass(frozen=True)
class KeyRecord:
    """A key row detached from any session (safe to keep in a process-wide cache)."""

    kid: str
    alg: str
    public_jwk: dict[str, Any]
    private_key_enc: str
    created_at: datetime
    active_from: datetime
    retire_after: datetime | None
    expires_at: datetime | None

    @classmethod
    def of(cls, row: SigningKey) -> KeyRecord:
        """A record of ``row`` with timezone-aware times."""
        return cls(
            kid=row.kid,
            alg=row.alg,
            public_jwk=dict(row.public_jwk),
            private_key_enc=row.private_key_enc,
            created_at=row.created_at or utcnow(),
            active_from=row.active_from or utcnow(),
            retire_after=row.retire_after,
            expires_at=row.expires_at,
        )


def is_id_token_key(key: KeyRecord) -> bool:
    """Whether ``key`` signs ID tokens (and nothing else)."""
    return key.alg == ID_TOKEN_ALG


def is_published(key: KeyRecord, now: datetime) -> bool:
    """Whether the key belongs in the JWKS at ``now``."""
    return key.expires_at is None or key.expires_at > now


def can_sign(key: KeyRecord, now: datetime) -> bool:
    """Whether the key may sign at ``now``."""
    return key.active_from <= now and (key.retire_after is None or key.retire_after > now)


def key_state(key: KeyRecord, now: datetime) -> str:
    """``pending``, ``signing``, ``retiring``, ``retired`` or ``expired`` (see module doc)."""
    if not is_published(key, now):
        return "expired"
    if key.active_from > now:
        return "pending"
    if can_sign(key, now):
        return "signing" if key.retire_after is None else "retiring"
    return "retired"


async def load_records(session: AsyncSession) -> list[KeyRecord]:
    """Every key row, newest ``active_from`` first, read now (no cache)."""
    rows = [KeyRecord.of(row) for row in (await session.exec(select(SigningKey))).all()]
    rows.sort(key=lambda k: (k.active_from, k.created_at), reverse=True)
    return rows


class KeyRing:
    """Keys read from the database, cached for a few seconds (the database stays the truth).

    Decrypted private keys and decoded public keys are cached by ``kid`` for the life of the
    process: a kid never changes its key material.
    """

    def __init__(
        self,
        box: SecretBox,
        *,
        alg: str,
        cache_seconds: float = 5.0,
        unknown_kid_reload_seconds: float = 1.0,
    ) -> None:
        self.box = box
        self.alg = alg
        self.cache_seconds = cache_seconds
        self.unknown_kid_reload_seconds = unknown_kid_reload_seconds
        self._rows: list[KeyRecord] = []
        self._loaded_at = 0.0
        self._decrypted: dict[str, LoadedKey] = {}
        self._public: dict[str, jwt.PyJWK] = {}

    def invalidate(self) -> None:
        """Forget the cached rows (after a rotation in this process)."""
        self._loaded_at = 0.0

    async def rows(self, session: AsyncSession) -> list[KeyRecord]:
        """All keys, newest first, at most ``cache_seconds`` old."""
        if time.monotonic() - self._loaded_at > self.cache_seconds:
            self._rows = await load_records(session)
            self._loaded_at = time.monotonic()
        return self._rows

    async def ensure_key(self, session: AsyncSession) -> None:
        """Create a first key when there is none that can sign (bootstrap; no token exists)."""
        now = utcnow()
        self.invalidate()
        rows = await self.rows(session)
        if not any(can_sign(k, now) and not is_id_token_key(k) for k in rows):
            session.add(create_key(self.box, alg=self.alg))
            await session.commit()
            self.invalidate()

    async def ensure_id_token_key(self, session: AsyncSession) -> None:
        """Create an ID-token key (:data:`ID_TOKEN_ALG`) unless one signs or will; commits.

        It signs at once: no ID token was issued before it, so no verifier holds a JWKS it
        should have been in (clients fetch the JWKS on a kid they do not know)."""
        now = utcnow()

        def live(rows: list[KeyRecord]) -> bool:
            states = ("pending", "signing", "retiring")
            return any(is_id_token_key(k) and key_state(k, now) in states for k in rows)

        if live(await self.rows(session)):  # the cached rows: no query on the hot path
            return
        self.invalidate()
        if not live(await self.rows(session)):
            session.add(create_key(self.box, alg=ID_TOKEN_ALG))
            await session.commit()
            self.invalidate()

    async def signing_key(
        self, session: AsyncSession, *, now: datetime | None = None, alg: str | None = None
    ) -> LoadedKey:
        """The newest key that may sign now: of ``alg``, or by default any of the platform's
        own (a key of another algorithm than the setting's signs until its rotation)."""
        now = now or utcnow()
        for row in await self.rows(session):
            if is_id_token_key(row) == (alg == ID_TOKEN_ALG) and can_sign(row, now):
                return self._decrypt(row)
        self.invalidate()
        raise RuntimeError("no signing key can sign now; run `orgplane keys rotate`")

    async def jwks(self, session: AsyncSession) -> dict[str, Any]:
        """The public JWK set: every published key (public members only)."""
        now = utcnow()
        return {"keys": [r.public_jwk for r in await self.rows(session) if is_published(r, now)]}

    async def public_key(self, session: AsyncSession, kid: str) -> jwt.PyJWK | None:
        """The public key published under ``kid``, or None.

        An unknown kid may be a key another replica created moments ago, so the table is read
        again, but at most once per ``unknown_kid_reload_seconds``: tokens with made-up kids
        must not turn into a query each.
        """
        key = self.public_key_for(kid, await self.rows(session))
        reload_due = time.monotonic() - self._loaded_at > self.unknown_kid_reload_seconds
        if key is None and reload_due:
            self.invalidate()
            key = self.public_key_for(kid, await self.rows(session))
        return key

    def public_key_for(self, kid: str, rows: list[KeyRecord]) -> jwt.PyJWK | None:
        """The public key of ``kid`` among ``rows`` if it is published now, or None.

        A ``PyJWK`` binds the key to its own algorithm, so a token cannot pick another one.
        """
        now = utcnow()
        for row in rows:
            if row.kid == kid and is_published(row, now):
                public = self._public.get(kid)
                if public is None:
                    public = jwt.PyJWK(row.public_jwk, algorithm=row.alg)
                    self._public[kid] = public
                return public
        return None

    def _decrypt(self, row: KeyRecord) -> LoadedKey:
        loaded = self._decrypted.get(row.kid)
        if loaded is None:
            pem = self.box.decrypt(row.private_key_enc)
            private = serialization.load_pem_private_key(pem, password=None)
            assert isinstance(
                private, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
            )
            loaded = LoadedKey(kid=row.kid, alg=row.alg, private_key=private)
            self._decrypted[row.kid] = loaded
        return loaded


def rotation_times(*, now: datetime, jwks_cache: int, max_token_ttl: int) -> dict[str, datetime]:
    """When a rotation's new key starts signing and the old key leaves the JWKS.

    ``jwks_cache`` is how long a verifier may keep a JWKS it fetched; ``max_token_ttl`` the
    longest lifetime of any token the old key signed (plus a minute for clock skew).
    """
    switch = now + timedelta(seconds=jwks_cache)
    return {"active_from": switch, "old_expires": switch + timedelta(seconds=max_token_ttl + 60)}
