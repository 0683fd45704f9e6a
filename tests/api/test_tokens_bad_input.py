"""Forged and damaged tokens at every control-plane endpoint that takes one.

Each is tried as a Bearer token (``/api/v1/me``), as the session cookie, and as the
``subject_token`` of a token exchange. Expected: 401 ``invalid_token`` (problem+json) or OAuth
``invalid_request`` (RFC 8693 §2.2.2), never a 5xx, and no request to any URL a token names.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from litestar.testing import AsyncTestClient

from tests.conftest import TEST_SECRET
from tests.support.api import add_user, assert_problem
from tests.support.tokens import exchange, login_body, make_org, platform_key, sign_exactly

ISSUER = "http://127.0.0.1:8080"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_jws(header: dict[str, Any], claims: dict[str, Any], sign: Any = None) -> str:
    """A compact JWS with any header; ``sign(signing_input) -> bytes`` or an empty signature."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = sign(signing_input.encode()) if sign else b""
    return f"{signing_input}.{b64(signature)}"


class FetchTrap:
    """A loopback HTTP server that serves an attacker's JWKS and counts every request."""

    def __init__(self, jwks: dict[str, Any]) -> None:
        self.hits = 0
        trap = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                trap.hits += 1
                body = json.dumps(jwks).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FetchTrap:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def attacker() -> dict[str, Any]:
    """An EC key that is not the platform's, with its public JWK."""
    key = ec.generate_private_key(ec.SECP256R1())
    jwk: dict[str, Any] = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwk.update(kid="attacker", alg="ES256", use="sig")
    return {"key": key, "jwk": jwk}


@pytest.fixture
def trap(attacker: dict[str, Any]) -> Iterator[FetchTrap]:
    with FetchTrap({"keys": [attacker["jwk"]]}) as server:
        yield server


def claims_for(user_id: str, **override: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": ISSUER,
        "sub": user_id,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
        "token_use": "access",
        "client_id": "orgplane",
        "scope": "openid orgplane",
    }
    claims.update(override)
    return claims


def forged_tokens(
    user_id: str, real: str, attacker: dict[str, Any], trap_url: str, public_pem: bytes
) -> dict[str, str]:
    """Every kind of bad token, by name."""
    kid = jwt.get_unverified_header(real)["kid"]
    claims = claims_for(user_id)

    signer = jwt.algorithms.ECAlgorithm(jwt.algorithms.ECAlgorithm.SHA256)

    def es256(extra_header: dict[str, Any]) -> str:
        return raw_jws(
            {"alg": "ES256", "typ": "at+jwt", **extra_header},
            claims,
            lambda data: signer.sign(data, attacker["key"]),
        )

    def hs256(secret: bytes) -> str:
        return raw_jws(
            {"alg": "HS256", "typ": "at+jwt", "kid": kid},
            claims,
            lambda data: hmac.new(secret, data, hashlib.sha256).digest(),
        )

    head, payload, sig = real.split(".")
    flipped_sig = bytearray(base64.urlsafe_b64decode(sig + "=="))
    flipped_sig[5] ^= 0x01
    flipped_payload = bytearray(base64.urlsafe_b64decode(payload + "=="))
    flipped_payload[10] ^= 0x20
    tokens = {
        f"alg {alg}": raw_jws({"alg": alg, "typ": "at+jwt", "kid": kid}, claims)
        for alg in ("none", "None", "NONE", "nOnE")
    }
    tokens |= {
        "HS256 with the public key PEM": hs256(public_pem),
        "HS256 with the public key DER": hs256(
            serialization.load_pem_public_key(public_pem).public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        ),
        "attacker key, our kid": es256({"kid": kid}),
        "unknown kid": es256({"kid": "nope"}),
        "path kid": es256({"kid": "../../etc/passwd"}),
        "10 KB kid": es256({"kid": "A" * 10_240}),
        "kid not a string": es256({"kid": {"$ne": None}}),
        "jku to attacker JWKS": es256({"kid": "attacker", "jku": f"{trap_url}/jwks.json"}),
        "x5u to attacker": es256({"kid": "attacker", "x5u": f"{trap_url}/cert.pem"}),
        "embedded attacker jwk": es256({"kid": "attacker", "jwk": attacker["jwk"]}),
        "embedded jwk, our kid": es256({"kid": kid, "jwk": attacker["jwk"]}),
        "typ JWT": raw_jws({"alg": "ES256", "typ": "JWT", "kid": kid}, claims),
        "typ not a string": raw_jws({"alg": "ES256", "typ": 7, "kid": kid}, claims),
        "no header json": "bm90IGpzb24." + payload + "." + sig,
        "truncated": real[:-12],
        "signature dropped": f"{head}.{payload}.",
        "two parts": f"{head}.{payload}",
        "bit-flipped signature": f"{head}.{payload}.{b64(bytes(flipped_sig))}",
        "bit-flipped payload": f"{head}.{b64(bytes(flipped_payload))}.{sig}",
        "1 MB": real + "A" * 1_000_000,
        "refresh token": "opr_" + "x" * 43,
        "instance credential": "opi_" + "y" * 43,
        "unicode junk": "\u00e9\u00e9.\u00e9.\u00e9",
    }
    return tokens


async def _platform_signed(
    client: AsyncTestClient[Any], user_id: str, org_id: str
) -> dict[str, str]:
    """Tokens really signed by the platform's key, wrong in their claims."""
    now = int(time.time())
    variants = {
        "wrong iss": claims_for(user_id, iss="https://evil.example"),
        "wrong aud": claims_for(user_id, aud="https://evil.example"),
        "org audience": claims_for(user_id, aud=f"urn:orgplane:org:{org_id}"),
        "not token_use access": claims_for(user_id, token_use="refresh"),
        "expired": claims_for(user_id, iat=now - 3600, nbf=now - 3600, exp=now - 600),
        "future nbf": claims_for(user_id, nbf=now + 3600, exp=now + 7200),
        "no exp": {k: v for k, v in claims_for(user_id).items() if k != "exp"},
        "no jti": {k: v for k, v in claims_for(user_id).items() if k != "jti"},
        "unknown user": claims_for(uuid.uuid4().hex),
        "sub not a string": claims_for(12345),
        "exp not a number": claims_for(user_id, exp="tomorrow"),
    }
    key = await platform_key(client, TEST_SECRET)
    return {name: sign_exactly(key, claims) for name, claims in variants.items()}


async def test_bad_tokens_are_refused_everywhere_without_fetching_anything(
    client: AsyncTestClient[Any],
    attacker: dict[str, Any],
    trap: FetchTrap,
) -> None:
    user_id = await add_user(client, "victim@example.com")
    org_id = await make_org(client, "acme", members={user_id: "owner"})
    real = (await login_body(client, "victim@example.com"))["access_token"]
    jwks = (await client.get("/.well-known/jwks.json")).json()["keys"][0]
    public_pem = jwt.PyJWK(jwks).key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    org_token = (await exchange(client, real, audience="org:acme")).json()["access_token"]
    tokens = forged_tokens(user_id, real, attacker, trap.url, public_pem)
    tokens |= await _platform_signed(client, user_id, org_id)
    tokens["org token"] = org_token

    for name, token in tokens.items():
        raw = token.encode()
        as_bearer = await client.get("/api/v1/me", headers={"Authorization": b"Bearer " + raw})
        assert as_bearer.status_code == 401, (name, as_bearer.text)
        assert_problem(as_bearer, 401, "invalid_token")
        as_cookie = await client.get("/api/v1/me", headers={"Cookie": b"orgplane_session=" + raw})
        assert as_cookie.status_code == 401, (name, as_cookie.text)
        as_subject = await exchange(client, token, audience="org:acme")
        assert as_subject.status_code == 400, (name, as_subject.text)
        assert as_subject.json()["error"] == "invalid_request", (name, as_subject.json())
        assert as_subject.json()["error_description"] == "The subject_token is invalid or expired."
    assert trap.hits == 0, "a token header made the control plane fetch a URL"

    # The real token still works: the refusals above are about the tokens, not the user.
    ok = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {real}"})
    assert ok.status_code == 200
    assert (await exchange(client, real, audience="org:acme")).status_code == 200


async def test_bearer_header_oddities_are_401(client: AsyncTestClient[Any]) -> None:
    for header in (
        "Bearer",
        "Bearer ",
        "Basic abc",
        "bearer x.y.z",
        "Bearer a b c",
        "Token abc",
        "Bearer " + "." * 5000,
    ):
        answer = await client.get("/api/v1/me", headers={"Authorization": header})
        assert answer.status_code == 401, (header, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
