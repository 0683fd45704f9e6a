"""Signing keys: creation, encryption at rest, and which key signs and which are published.

A key is *published* (in JWKS) from ``created_at`` until ``expires_at`` and *signs* from
``active_from`` until ``retire_after``. Rotation creates a key whose ``active_from`` lies at
least one JWKS cache lifetime ahead, so every verifier has seen it before it signs; the old key
stops signing then and stays published until every token it signed has expired.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel import select

from control_plane.db.models import SigningKey, new_id, utcnow
from control_plane.security.secrets import SecretBox

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def _generate(alg: str) -> PrivateKey:
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unsupported signing algorithm {alg!r}")


def _public_jwk(key: PrivateKey, *, kid: str, alg: str) -> dict[str, Any]:
    algo: Any = jwt.algorithms.ECAlgorithm if alg == "ES256" else jwt.algorithms.OKPAlgorithm
    jwk: dict[str, Any] = algo.to_jwk(key.public_key(), as_dict=True)
    jwk.update(kid=kid, alg=alg, use="sig")
    return jwk


def create_key(box: SecretBox, *, alg: str, active_from: datetime | None = None) -> SigningKey:
    """A new key row (not yet added to a session)."""
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


def _aware(value: datetime | None) -> datetime | None:
    # SQLite returns naive datetimes even for timezone=True columns; they are stored in UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=utcnow().tzinfo)
    return value


def is_published(key: SigningKey, now: datetime) -> bool:
    """Whether the key belongs in the JWKS at ``now``."""
    expires = _aware(key.expires_at)
    return expires is None or expires > now


def can_sign(key: SigningKey, now: datetime) -> bool:
    """Whether the key may sign at ``now``."""
    active_from, retire = _aware(key.active_from), _aware(key.retire_after)
    assert active_from is not None
    return active_from <= now and (retire is None or retire > now)


class KeyRing:
    """Keys read from the database, cached for a few seconds (the database stays the truth)."""

    def __init__(self, box: SecretBox, *, alg: str, cache_seconds: float = 5.0) -> None:
        self.box = box
        self.alg = alg
        self.cache_seconds = cache_seconds
        self._rows: list[SigningKey] = []
        self._loaded_at = 0.0
        self._decrypted: dict[str, LoadedKey] = {}

    def invalidate(self) -> None:
        """Forget the cache (after a rotation in this process)."""
        self._loaded_at = 0.0

    async def rows(self, session: AsyncSession) -> list[SigningKey]:
        """All key rows, newest first."""
        if time.monotonic() - self._loaded_at > self.cache_seconds:
            result = await session.exec(select(SigningKey))
            rows = list(result.all())
            rows.sort(key=lambda k: _aware(k.active_from) or utcnow(), reverse=True)
            self._rows, self._loaded_at = rows, time.monotonic()
        return self._rows

    async def ensure_key(self, session: AsyncSession) -> None:
        """Create a first key when there is none that can sign (bootstrap; no token exists)."""
        now = utcnow()
        self.invalidate()
        if not any(can_sign(k, now) for k in await self.rows(session)):
            session.add(create_key(self.box, alg=self.alg))
            await session.commit()
            self.invalidate()

    async def signing_key(self, session: AsyncSession) -> LoadedKey:
        """The newest key that may sign now."""
        now = utcnow()
        for row in await self.rows(session):
            if can_sign(row, now):
                return self._decrypt(row)
        self.invalidate()
        raise RuntimeError("no signing key can sign now; run `orgplane keys rotate`")

    async def jwks(self, session: AsyncSession) -> dict[str, Any]:
        """The public JWK set: every published key."""
        now = utcnow()
        return {"keys": [r.public_jwk for r in await self.rows(session) if is_published(r, now)]}

    def _decrypt(self, row: SigningKey) -> LoadedKey:
        loaded = self._decrypted.get(row.kid)
        if loaded is None:
            pem = self.box.decrypt(row.private_key_enc)
            private = serialization.load_pem_private_key(pem, password=None)
            assert isinstance(private, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey)
            loaded = LoadedKey(kid=row.kid, alg=row.alg, private_key=private)
            self._decrypted[row.kid] = loaded
        return loaded

    def public_key_for(self, kid: str, rows: list[SigningKey]) -> Any:
        """The public key object for ``kid`` among ``rows``, or None."""
        for row in rows:
            if row.kid == kid and is_published(row, utcnow()):
                return self._decrypt(row).private_key.public_key()
        return None


def rotation_times(*, now: datetime, jwks_cache: int, max_token_ttl: int) -> dict[str, datetime]:
    """When a rotation's new key starts signing and the old key leaves the JWKS."""
    switch = now + timedelta(seconds=jwks_cache)
    return {"active_from": switch, "old_expires": switch + timedelta(seconds=max_token_ttl + 60)}
