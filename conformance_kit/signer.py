"""The kit's own signing keys and the tokens it sends, good and bad.

Keys are made by the control plane's own code (:func:`control_plane.signing.keys.create_key`) and
tokens signed by :func:`control_plane.signing.jws.sign`, so a token the kit calls valid is what
the platform's token exchange would issue. The bad ones each break exactly one rule: another
key under the same ``kid``, expired, not yet valid, another org's audience, another issuer,
``alg: none``, ``alg: HS256`` keyed with the public key (the classic confusion attack).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from control_plane.signing.jws import sign
from control_plane.signing.keys import LoadedKey, create_key
from orgplane_wire.contract import ROLE_SCOPES, TOKEN_TYP, org_audience
from orgplane_wire.secret_box import SecretBox

TOKEN_TTL = 300
#: Far enough outside the 30 s leeway every verifier allows.
SKEW = 600


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _new_key(alg: str) -> tuple[LoadedKey, dict[str, Any]]:
    box = SecretBox(secrets.token_urlsafe(32), purpose="orgplane conformance kit")
    row = create_key(box, alg=alg)
    private = serialization.load_pem_private_key(box.decrypt(row.private_key_enc), password=None)
    assert isinstance(private, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey)
    return LoadedKey(kid=row.kid, alg=row.alg, private_key=private), dict(row.public_jwk)


@dataclass(frozen=True)
class Signer:
    """The kit's key, the JWKS that publishes it, and the tokens for one org."""

    key: LoadedKey
    public_jwk: dict[str, Any]
    issuer: str
    org_id: str
    org_slug: str

    @classmethod
    def create(cls, *, issuer: str, org_id: str, org_slug: str, alg: str = "ES256") -> Signer:
        """A fresh key (ES256 or EdDSA) for a run."""
        key, jwk = _new_key(alg)
        return cls(key=key, public_jwk=jwk, issuer=issuer, org_id=org_id, org_slug=org_slug)

    def jwks(self) -> dict[str, Any]:
        """The JWK set the kit serves."""
        return {"keys": [self.public_jwk]}

    def claims(self, **override: Any) -> dict[str, Any]:
        """Claims of an owner's org token for the run's org, with ``override`` applied."""
        base: dict[str, Any] = {
            "iss": self.issuer,
            "sub": "conformance-user",
            "aud": org_audience(self.org_id),
            "client_id": "orgplane-conformance",
            "scope": " ".join(ROLE_SCOPES["owner"]),
            "org_id": self.org_id,
            "org_slug": self.org_slug,
            "org_role": "owner",
            "plan": "conformance",
            "features": [],
        }
        return {**base, **override}

    def token(self, **override: Any) -> str:
        """A token signed with the kit's key (valid unless ``override`` breaks a claim)."""
        return sign(self.claims(**override), self.key, ttl=TOKEN_TTL)[0]

    def bad_tokens(self, *, other_org: str) -> dict[str, tuple[str, str]]:
        """Clause id -> (what is wrong, token) for every token an instance must refuse."""
        now = int(time.time())
        other_key, _ = _new_key(self.key.alg)
        forged_key = LoadedKey(
            kid=self.key.kid, alg=other_key.alg, private_key=other_key.private_key
        )
        return {
            "tokens.forged": (
                "a token signed by another key under the published kid",
                sign(self.claims(), forged_key, ttl=TOKEN_TTL)[0],
            ),
            "tokens.expired": (
                f"a token that expired {SKEW} s ago",
                self.token(iat=now - 2 * SKEW, nbf=now - 2 * SKEW, exp=now - SKEW),
            ),
            "tokens.not-yet-valid": (
                f"a token valid only in {SKEW} s (nbf)",
                self.token(nbf=now + SKEW),
            ),
            "tokens.wrong-org": (
                f"another org's token (aud {org_audience(other_org)})",
                self.token(aud=org_audience(other_org), org_id=other_org, org_slug="other-org"),
            ),
            "tokens.wrong-issuer": (
                "a token of another issuer",
                self.token(iss="https://not-the-control-plane.invalid"),
            ),
            "tokens.alg-none": ("an unsigned token (alg none)", self._unsigned("none")),
            "tokens.alg-hs256": (
                "an HS256 token keyed with the public key",
                self._unsigned("HS256"),
            ),
        }

    def _unsigned(self, alg: str) -> str:
        """A token whose header names ``alg``: ``none`` (empty signature) or ``HS256`` with the
        public key's PEM as the HMAC secret."""
        now = int(time.time())
        header = {"alg": alg, "typ": TOKEN_TYP, "kid": self.key.kid}
        claims = self.claims(iat=now, nbf=now, exp=now + TOKEN_TTL, jti=secrets.token_hex(16))
        head = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())
        if alg == "none":
            return head + "."
        pem = self.key.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        mac = hmac.new(pem, head.encode(), hashlib.sha256).digest()
        return head + "." + _b64(mac)
