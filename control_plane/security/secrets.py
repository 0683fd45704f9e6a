"""Opaque secrets: generation, hashing for storage, and encryption at rest."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def new_secret(prefix: str, nbytes: int = 32) -> str:
    """A random URL-safe secret with a recognisable prefix (``opr_``, ``opi_``...)."""
    return f"{prefix}_{secrets.token_urlsafe(nbytes)}"


def hash_secret(value: str) -> str:
    """SHA-256 hex of a high-entropy secret (stored instead of the secret)."""
    return hashlib.sha256(value.encode()).hexdigest()


def secret_matches(value: str, stored_hash: str) -> bool:
    """Constant-time comparison of a presented secret with its stored hash."""
    return hmac.compare_digest(hash_secret(value), stored_hash)


class SecretBox:
    """Authenticated encryption (Fernet) under a key derived from the deployment secret."""

    def __init__(self, deployment_secret: str, *, purpose: str) -> None:
        if not deployment_secret:
            raise ValueError("a deployment secret is required")
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()).derive(
            deployment_secret.encode()
        )
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def encrypt(self, plaintext: bytes) -> str:
        """Ciphertext as text."""
        return self._fernet.encrypt(plaintext).decode()

    def decrypt(self, ciphertext: str) -> bytes:
        """Plaintext; raises ValueError when the ciphertext was not made with this key."""
        try:
            return self._fernet.decrypt(ciphertext.encode())
        except InvalidToken as exc:
            raise ValueError("cannot decrypt: wrong deployment secret or damaged data") from exc
