"""Secrets both services keep: hashes of high-entropy secrets, and a box that encrypts values.

:class:`SecretBox` is authenticated encryption (Fernet: AES-128-CBC + HMAC-SHA256) under a key
derived with HKDF-SHA256 from a secret, a purpose and an optional salt. The control plane's key
is its deployment secret (``ORGPLANE_SECRET_KEY``), one purpose per kind of value; an instance's
is its credential salted with its org id, so rotating the credential makes its secret settings
unreadable (they are write-only and written again).

The key is derived at the first use, not when the box is made: cryptography is ~10 MB resident
and 45-75 ms of CPU to import, which an instance that never sees a secret setting need not pay.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

#: Loaded by a box's first use (:attr:`SecretBox._fernet`), not at import.
FIRST_USE_MODULES = ("cryptography.fernet", "cryptography.hazmat.primitives.kdf.hkdf")


def hash_secret(value: str) -> str:
    """SHA-256 hex of a high-entropy secret (stored instead of the secret)."""
    return hashlib.sha256(value.encode()).hexdigest()


def secret_matches(value: str, stored_hash: str) -> bool:
    """Constant-time comparison of a presented secret with its stored hash."""
    return hmac.compare_digest(hash_secret(value), stored_hash)


class SecretBox:
    """Authenticated encryption under a key derived from ``secret`` for one ``purpose``.

    ``refusal`` is the message of the ValueError :meth:`decrypt` raises for a value that was not
    made with this key (or was damaged).
    """

    def __init__(
        self,
        secret: str,
        *,
        purpose: str,
        salt: bytes | None = None,
        refusal: str = "cannot decrypt: wrong deployment secret or damaged data",
    ) -> None:
        if not secret:
            raise ValueError("a secret is required")
        self._secret, self._purpose, self._salt, self._refusal = secret, purpose, salt, refusal

    @cached_property
    def _fernet(self) -> Fernet:
        from cryptography.fernet import Fernet
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=self._salt, info=self._purpose.encode()
        ).derive(self._secret.encode())
        return Fernet(base64.urlsafe_b64encode(key))

    def encrypt(self, plaintext: bytes) -> str:
        """Ciphertext as text."""
        return self._fernet.encrypt(plaintext).decode()

    def decrypt(self, ciphertext: str) -> bytes:
        """Plaintext; raises ValueError when the ciphertext was not made with this key."""
        from cryptography.fernet import InvalidToken  # at first use, as in _fernet

        fernet = self._fernet
        try:
            return fernet.decrypt(ciphertext.encode())
        except InvalidToken as exc:
            raise ValueError(self._refusal) from exc
