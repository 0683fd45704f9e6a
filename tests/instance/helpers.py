"""Helpers for org-instance tests: a signing key with its JWKS, a fake control plane transport
that counts requests and injects faults, and in-process instance apps."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization

from control_plane.signing.jws import sign
from control_plane.signing.keys import LoadedKey, create_key
from org_instance.config import InstanceConfig
from orgplane_wire.contract import HEARTBEAT_PATH, ROLE_SCOPES, org_audience
from orgplane_wire.secret_box import SecretBox

ISSUER = "http://cp.test"
JWKS_URL = ISSUER + "/.well-known/jwks.json"


class Signer:
    """A control-plane-like signing key: its public JWK and tokens it signs."""

    def __init__(self, alg: str = "ES256") -> None:
        box = SecretBox("test-secret-for-instance-tests", purpose="test keys")
        row = create_key(box, alg=alg)
        private: Any = serialization.load_pem_private_key(
            box.decrypt(row.private_key_enc), password=None
        )
        self.key = LoadedKey(kid=row.kid, alg=alg, private_key=private)
        self.jwk: dict[str, Any] = dict(row.public_jwk)

    @property
    def kid(self) -> str:
        return self.key.kid

    def claims(self, org_id: str, /, **overrides: Any) -> dict[str, Any]:
        """Valid org-token claims for ``org_id`` (without the time claims ``sign`` adds)."""
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "sub": "user-" + uuid.uuid4().hex[:8],
            "aud": org_audience(org_id),
            "client_id": "orgplane",
            "org_id": org_id,
            "org_slug": "acme",
            "org_role": "member",
            "plan": "free",
            "features": ["chat", "files"],
        }
        claims.update(overrides)
        # The scopes token exchange grants the role, unless the test asks for others.
        claims.setdefault("scope", " ".join(ROLE_SCOPES.get(str(claims["org_role"]), ())))
        return claims

    def token(self, org_id: str, /, *, ttl: int = 300, **overrides: Any) -> str:
        """A valid org token for ``org_id`` with ``overrides`` applied."""
        token, _ = sign(self.claims(org_id, **overrides), self.key, ttl=ttl)
        return token

    def raw(self, payload: dict[str, Any], headers: dict[str, Any]) -> str:
        """A token with exactly this payload and extra headers, signed with the real key."""
        return jwt.encode(payload, self.key.private_key, algorithm=self.key.alg, headers=headers)

    def full_claims(self, org_id: str, /, **overrides: Any) -> dict[str, Any]:
        """Valid claims including iat/nbf/exp/jti, for hand-built tokens."""
        now = int(time.time())
        claims = {"iat": now, "nbf": now, "exp": now + 300, "jti": uuid.uuid4().hex}
        claims.update(self.claims(org_id))
        claims.update(overrides)
        return claims


@dataclass
class FakeControlPlane:
    """An httpx transport answering JWKS and heartbeats; counts and records every request.

    ``jwks_fault`` / ``heartbeat_fault`` inject failures: "down" (connection refused),
    "garbage" (200 with a body that is not a JWKS), "500", or a callable returning a response.
    """

    signers: list[Signer]
    cache_control: str = "public, max-age=300"
    jwks_fault: str | Callable[[httpx.Request], httpx.Response] | None = None
    heartbeat_fault: str | None = None
    answer: dict[str, Any] = field(
        default_factory=lambda: {
            "accepted": True,
            "config_version": 1,
            "interval": 10.0,
            "limits": {},
        }
    )
    requests: list[httpx.Request] = field(default_factory=list)
    heartbeats: list[dict[str, Any]] = field(default_factory=list)

    @property
    def jwks_requests(self) -> int:
        return sum(1 for r in self.requests if r.url.path.endswith("/jwks.json"))

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path.endswith("/jwks.json"):
            return self._jwks(request)
        if request.url.path == HEARTBEAT_PATH:
            return self._heartbeat(request)
        return httpx.Response(404)

    def _jwks(self, request: httpx.Request) -> httpx.Response:
        fault = self.jwks_fault
        if callable(fault):
            return fault(request)
        if fault == "down":
            raise httpx.ConnectError("connection refused", request=request)
        if fault == "garbage":
            return httpx.Response(200, content=b"<html>not json</html>")
        if fault == "500":
            return httpx.Response(500, json={"error": "boom"})
        body = {"keys": [s.jwk for s in self.signers]}
        return httpx.Response(200, json=body, headers={"Cache-Control": self.cache_control})

    def _heartbeat(self, request: httpx.Request) -> httpx.Response:
        if self.heartbeat_fault == "down":
            raise httpx.ConnectError("connection refused", request=request)
        if self.heartbeat_fault == "500":
            return httpx.Response(500, json={"code": "internal_error"})
        self.heartbeats.append(json.loads(request.content))
        return httpx.Response(200, json=self.answer)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handler))


def instance_config(data_dir: Path, *, org_id: str = "", **overrides: Any) -> InstanceConfig:
    """A config for an in-process instance (no heartbeats unless a control-plane URL is given)."""
    org_id = org_id or uuid.uuid4().hex
    values: dict[str, Any] = {
        "org_id": org_id,
        "org_slug": "acme",
        "instance_credential": f"opi_{org_id}.test-credential-0123456789",
        "data_dir": data_dir,
        "jwks_url": JWKS_URL,
        "issuer": ISSUER,
        "audience": org_audience(org_id),
        "hostnames": ("acme.orgplane.test",),
    }
    values.update(overrides)
    return InstanceConfig(**values)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
