"""Secrets of the instance: opaque tokens, their hashes, and encryption of secret settings.

Secret settings are encrypted (Fernet: AES-128-CBC + HMAC-SHA256) under a key derived with HKDF
from the instance credential and the org id. Rotating the credential therefore makes values
written under the old one unreadable; they are write-only anyway and must be written again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography.fernet import Fernet

RUNNER_TOKEN_PREFIX = "ort"
#: Loaded by the first secret setting (:attr:`SettingsBox._fernet`), not at start.
FIRST_USE_MODULES = ("cryptography.fernet", "cryptography.hazmat.primitives.kdf.hkdf")


def hash_secret(value: str) -> str:
    """SHA-256 hex of a high-entropy secret (stored instead of it)."""
    return hashlib.sha256(value.encode()).hexdigest()


def secret_matches(value: str, stored_hash: str) -> bool:
    """Constant-time comparison of a presented secret with a stored hash."""
    return hmac.compare_digest(hash_secret(value), stored_hash)


def new_runner_token(org_id: str) -> str:
    """A runner token bound to ``org_id``: ``ort_<org_id>.<secret>``."""
    return f"{RUNNER_TOKEN_PREFIX}_{org_id}.{secrets.token_urlsafe(32)}"


def runner_token_org(token: str) -> str | None:
    """The org id a runner token names, or None when it is not shaped like one."""
    prefix = RUNNER_TOKEN_PREFIX + "_"
    if not token.startswith(prefix) or len(token) > 200 or "." not in token:
        return None
    return token[len(prefix) :].split(".", 1)[0] or None


class SettingsBox:
    """Authenticated encryption of secret setting values for one org."""

    def __init__(self, *, credential: str, org_id: str) -> None:
        self._credential, self._org_id = credential, org_id

    @cached_property
    def _fernet(self) -> Fernet:
        # Made at the first secret setting, not at start: cryptography is ~10 MB resident and
        # 45-75 ms of CPU to import, which an instance that never sees one need not pay.
        from cryptography.fernet import Fernet
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        key = HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=self._org_id.encode(),
            info=b"orgplane instance secret settings v1",
        ).derive(self._credential.encode())
        return Fernet(base64.urlsafe_b64encode(key))

    def encrypt(self, plaintext: str) -> str:
        """Ciphertext of ``plaintext`` as text."""
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        """The plaintext; ValueError when the value was written under another credential."""
        from cryptography.fernet import InvalidToken  # at first use, as in _fernet

        fernet = self._fernet
        try:
            return fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken as exc:
            raise ValueError("cannot decrypt: written under another instance credential") from exc
