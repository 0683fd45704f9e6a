"""A software WebAuthn authenticator for service tests, built on ``cryptography`` and ``cbor2``
independently of the server's library: it answers ``navigator.credentials.create()`` (``none``
attestation) and ``.get()`` options as a browser would send them (the JSON of WebAuthn Level 3
``PublicKeyCredential.toJSON()``), with knobs to make wrong answers (origin, RP ID, counter,
user verification, challenge).
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import re
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

UP, UV, BE, AT = 0x01, 0x04, 0x08, 0x40
OPTIONS = re.compile(r'data-passkey-options="([^"]+)"')


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def page_options(text: str) -> dict[str, Any]:
    """The passkey options a UI page carries in its ``data-passkey-options`` attribute."""
    found = OPTIONS.search(text)
    assert found, "the page offers no passkey"
    options: dict[str, Any] = json.loads(html.unescape(found.group(1)))
    return options


class SoftAuthenticator:
    """One credential (an ES256 key) of one authenticator, with its signature counter."""

    def __init__(self, rp_id: str, origin: str, *, synced: bool = False) -> None:
        self.rp_id, self.origin, self.synced = rp_id, origin, synced
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = os.urandom(32)
        self.sign_count = 0

    def _cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        x, y = numbers.x.to_bytes(32, "big"), numbers.y.to_bytes(32, "big")
        return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: x, -3: y})

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        body = {"type": kind, "challenge": challenge, "origin": origin or self.origin}
        return json.dumps({**body, "crossOrigin": False}).encode()

    def _flags(self, verified: bool) -> int:
        return UP | (UV if verified else 0) | (BE if self.synced else 0)

    def create(self, options: dict[str, Any], *, origin: str | None = None) -> dict[str, Any]:
        """The registration answer to ``options`` (creation options as JSON)."""
        assert options["rp"]["id"] == self.rp_id, options["rp"]
        client_data = self._client_data("webauthn.create", options["challenge"], origin)
        auth_data = (
            hashlib.sha256(self.rp_id.encode()).digest()
            + bytes([self._flags(True) | AT])
            + self.sign_count.to_bytes(4, "big")
            + bytes(16)
            + len(self.credential_id).to_bytes(2, "big")
            + self.credential_id
            + self._cose_key()
        )
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {
            "id": b64url(self.credential_id),
            "rawId": b64url(self.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation),
                "transports": ["internal"],
            },
            "clientExtensionResults": {},
        }

    def get(
        self,
        options: dict[str, Any],
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        counter: int | None = None,
        verified: bool = True,
        challenge: str | None = None,
    ) -> dict[str, Any]:
        """The assertion answering ``options`` (request options as JSON); the counter goes up
        by one unless ``counter`` is given (a clone replays an older one)."""
        self.sign_count = counter if counter is not None else self.sign_count + 1
        client_data = self._client_data("webauthn.get", challenge or options["challenge"], origin)
        auth_data = (
            hashlib.sha256((rp_id or self.rp_id).encode()).digest()
            + bytes([self._flags(verified)])
            + self.sign_count.to_bytes(4, "big")
        )
        signed = auth_data + hashlib.sha256(client_data).digest()
        signature = self.key.sign(signed, ec.ECDSA(hashes.SHA256()))
        return {
            "id": b64url(self.credential_id),
            "rawId": b64url(self.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "authenticatorData": b64url(auth_data),
                "signature": b64url(signature),
            },
            "clientExtensionResults": {},
        }
