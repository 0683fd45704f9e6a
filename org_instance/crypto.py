"""Secrets of the instance: runner tokens, and the box its secret settings are encrypted in.

Secret settings are encrypted in an :class:`~orgplane_wire.secret_box.SecretBox` whose key is
derived from the instance credential salted with the org id. Rotating the credential therefore
makes values written under the old one unreadable; they are write-only anyway and must be
written again.
"""

from __future__ import annotations

import secrets

from orgplane_wire.secret_box import SecretBox

RUNNER_TOKEN_PREFIX = "ort"


class SettingsBox:
    """The box of one org's secret settings, text in and text out (its key is derived at the
    first secret setting)."""

    def __init__(self, *, credential: str, org_id: str) -> None:
        self._box = SecretBox(
            credential,
            purpose="orgplane instance secret settings v1",
            salt=org_id.encode(),
            refusal="cannot decrypt: written under another instance credential",
        )

    def encrypt(self, plaintext: str) -> str:
        """Ciphertext of ``plaintext`` as text."""
        return self._box.encrypt(plaintext.encode())

    def decrypt(self, ciphertext: str) -> str:
        """The plaintext; ValueError when the value was written under another credential."""
        return self._box.decrypt(ciphertext).decode()


def new_runner_token(org_id: str) -> str:
    """A runner token bound to ``org_id``: ``ort_<org_id>.<secret>``."""
    return f"{RUNNER_TOKEN_PREFIX}_{org_id}.{secrets.token_urlsafe(32)}"


def runner_token_org(token: str) -> str | None:
    """The org id a runner token names, or None when it is not shaped like one."""
    prefix = RUNNER_TOKEN_PREFIX + "_"
    if not token.startswith(prefix) or len(token) > 200 or "." not in token:
        return None
    return token[len(prefix) :].split(".", 1)[0] or None
