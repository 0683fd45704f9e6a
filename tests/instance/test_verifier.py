"""The org instance's token verifier against a JWKS served through httpx.MockTransport.

Forged and damaged tokens are refused with ``invalid_token`` and cost at most the one
rate-limited JWKS refetch; keys are cached per Cache-Control and keep serving while the control
plane is down, slow or answering garbage.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from org_instance.verifier import JWKSVerifier, cache_seconds, parse_jwks
from orgplane_wire.contract import org_audience
from orgplane_wire.jose_header import InvalidToken
from tests.instance.helpers import ISSUER, JWKS_URL, FakeControlPlane, Signer
from tests.support.wait import DEFAULT_TIMEOUT

ORG = "a" * 32
OTHER = "b" * 32


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def revalidated(v: JWKSVerifier) -> None:
    """Wait for the background revalidation in flight to end: ``refresh`` joins a fetch in
    flight, and starts none of its own while the test's clock stands still."""
    async with asyncio.timeout(DEFAULT_TIMEOUT):
        await v.refresh()


def verifier(cp: FakeControlPlane, *, clock: Clock | None = None, **kw: Any) -> JWKSVerifier:
    return JWKSVerifier(
        jwks_url=JWKS_URL,
        issuer=ISSUER,
        audience=org_audience(ORG),
        org_id=ORG,
        http=cp.client(),
        clock=clock or Clock(),
        **kw,
    )


def b64(data: dict[str, Any] | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.fixture
def signer() -> Signer:
    return Signer()


@pytest.fixture
def cp(signer: Signer) -> FakeControlPlane:
    return FakeControlPlane(signers=[signer])


async def test_a_valid_token_verifies_and_the_jwks_is_fetched_once(
    cp: FakeControlPlane, signer: Signer
) -> None:
    v = verifier(cp)
    for _ in range(5):
        claims = await v.verify(signer.token(ORG, org_role="admin"))
        assert claims["org_id"] == ORG
        assert claims["org_role"] == "admin"
    assert cp.jwks_requests == 1
    assert v.known_kids == {signer.kid}


async def test_eddsa_keys_verify_and_a_key_is_used_only_with_its_own_algorithm(
    cp: FakeControlPlane, signer: Signer
) -> None:
    ed = Signer("EdDSA")
    cp.signers.append(ed)
    v = verifier(cp)
    assert (await v.verify(ed.token(ORG)))["org_id"] == ORG
    forged = ed.raw(signer.full_claims(ORG), {"kid": signer.kid, "typ": "at+jwt"})
    with pytest.raises(InvalidToken):
        await v.verify(forged)


def _alg_none(signer: Signer, alg: str) -> str:
    header = {"alg": alg, "typ": "at+jwt", "kid": signer.kid}
    return f"{b64(header)}.{b64(signer.full_claims(ORG))}."


def _hs256_with_public_key(signer: Signer) -> str:
    pem = signer.key.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "at+jwt", "kid": signer.kid}
    signing_input = f"{b64(header)}.{b64(signer.full_claims(ORG))}".encode()
    import hashlib
    import hmac

    mac = hmac.new(pem, signing_input, hashlib.sha256).digest()
    return f"{signing_input.decode()}.{b64(mac)}"


def _bit_flipped(token: str) -> str:
    head, payload, sig = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
    raw[5] ^= 0x01
    return f"{head}.{payload}.{b64(bytes(raw))}"


def bad_tokens(signer: Signer) -> dict[str, str]:
    """Every kind of forged or damaged token, by name."""
    good = signer.token(ORG)
    now = int(time.time())
    hdr = {"kid": signer.kid, "typ": "at+jwt"}
    return {
        **{f"alg {a}": _alg_none(signer, a) for a in ("none", "None", "NONE", "nOnE")},
        "HS256 with the public key": _hs256_with_public_key(signer),
        "kid with path characters": signer.raw(signer.full_claims(ORG), {**hdr, "kid": "../../x"}),
        "10 KB kid": signer.raw(signer.full_claims(ORG), {**hdr, "kid": "k" * 10_240}),
        "wrong issuer": signer.token(ORG, iss="https://evil.example"),
        "wrong audience": signer.token(ORG, aud="urn:orgplane:org:someone-else"),
        "other org's token": signer.token(OTHER, aud=org_audience(OTHER)),
        "our audience, other org_id": signer.token(ORG, org_id=OTHER),
        "expired": signer.raw(
            signer.full_claims(ORG, iat=now - 400, nbf=now - 400, exp=now - 60), hdr
        ),
        "future nbf": signer.raw(signer.full_claims(ORG, nbf=now + 120), hdr),
        "future iat": signer.raw(signer.full_claims(ORG, iat=now + 120), hdr),
        "no typ": signer.raw(signer.full_claims(ORG), {"kid": signer.kid}),
        "typ JWT": signer.raw(signer.full_claims(ORG), {**hdr, "typ": "JWT"}),
        "crit header": signer.raw(signer.full_claims(ORG), {**hdr, "crit": ["exp"]}),
        "unknown role": signer.token(ORG, org_role="superuser"),
        "no org_id": signer.raw(
            {k: v for k, v in signer.full_claims(ORG).items() if k != "org_id"}, hdr
        ),
        "truncated": good[: len(good) - 12],
        "bit-flipped": _bit_flipped(good),
        "1 MB": good + "A" * 1_048_576,
        "empty": "",
        "garbage": "not.a.token",
        "two segments": ".".join(good.split(".")[:2]),
        "non-ascii": good[:-3] + "äöü",
    }


async def test_every_bad_token_is_refused_with_invalid_token_and_no_extra_fetch(
    cp: FakeControlPlane, signer: Signer
) -> None:
    v = verifier(cp)
    await v.verify(signer.token(ORG))  # keys cached: only the bad tokens could cause fetches
    for name, token in bad_tokens(signer).items():
        with pytest.raises(InvalidToken) as caught:
            await v.verify(token)
        assert caught.value.code == "invalid_token", name
    assert cp.jwks_requests == 1


async def test_bad_tokens_before_any_key_is_known_cost_at_most_one_fetch(
    cp: FakeControlPlane, signer: Signer
) -> None:
    v = verifier(cp)
    for token in bad_tokens(signer).values():
        with pytest.raises(InvalidToken):
            await v.verify(token)
    assert cp.jwks_requests <= 1


async def test_key_location_headers_are_never_fetched(cp: FakeControlPlane, signer: Signer) -> None:
    v = verifier(cp)
    attacker = Signer()
    hostile = {
        "jku": "http://evil.test/jwks",
        "x5u": "http://evil.test/cert",
        "jwk": attacker.jwk,
        "typ": "at+jwt",
    }
    # Signed by the real key: the headers are ignored and the token verifies.
    ok = signer.raw(signer.full_claims(ORG), {**hostile, "kid": signer.kid})
    assert (await v.verify(ok))["org_id"] == ORG
    # Signed by the attacker's key named in the headers: refused.
    forged = attacker.raw(attacker.full_claims(ORG), {**hostile, "kid": attacker.kid})
    with pytest.raises(InvalidToken):
        await v.verify(forged)
    assert {str(r.url) for r in cp.requests} == {JWKS_URL}


async def test_an_unknown_kid_refetches_at_most_once_per_interval(
    cp: FakeControlPlane, signer: Signer
) -> None:
    clock = Clock()
    v = verifier(cp, clock=clock, refetch_interval=30)
    await v.verify(signer.token(ORG))
    stranger = Signer()
    for expected in (1, 2, 3):  # the keys were just fetched, then once per interval
        for _ in range(20):
            with pytest.raises(InvalidToken):
                await v.verify(stranger.token(ORG))
        assert cp.jwks_requests == expected
        clock.now += 31


async def test_concurrent_misses_share_one_fetch(cp: FakeControlPlane, signer: Signer) -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.05)  # a slow answer, so that the misses overlap: time is the point
        return httpx.Response(200, json={"keys": [signer.jwk]})

    cp.jwks_fault = None
    v = JWKSVerifier(
        jwks_url=JWKS_URL,
        issuer=ISSUER,
        audience=org_audience(ORG),
        org_id=ORG,
        http=httpx.AsyncClient(transport=httpx.MockTransport(slow)),
    )
    tokens = [signer.token(ORG) for _ in range(50)]
    results = await asyncio.gather(*(v.verify(t) for t in tokens))
    assert all(r["org_id"] == ORG for r in results)
    assert v.fetches == 1


async def test_a_rotated_in_key_is_picked_up_on_first_sight(
    cp: FakeControlPlane, signer: Signer
) -> None:
    clock = Clock()
    v = verifier(cp, clock=clock, refetch_interval=30)
    await v.verify(signer.token(ORG))
    clock.now += 31
    new = Signer()
    cp.signers.append(new)
    assert (await v.verify(new.token(ORG)))["org_id"] == ORG
    assert cp.jwks_requests == 2


async def test_cache_control_max_age_decides_when_keys_are_revalidated(
    cp: FakeControlPlane, signer: Signer
) -> None:
    cp.cache_control = "public, max-age=120"
    clock = Clock()
    v = verifier(cp, clock=clock, refetch_interval=10)
    await v.verify(signer.token(ORG))
    clock.now += 100
    await v.verify(signer.token(ORG))
    assert cp.jwks_requests == 1
    clock.now += 21  # past max-age: served from cache, revalidated in the background
    await v.verify(signer.token(ORG))
    await revalidated(v)
    assert cp.jwks_requests == 2


def test_cache_seconds_reads_cache_control() -> None:
    assert cache_seconds("public, max-age=300") == 300
    assert cache_seconds('max-age="60", must-revalidate') == 60
    assert cache_seconds("no-store") == 0
    assert cache_seconds(None) == 300
    assert cache_seconds("max-age=999999999") == 86_400
    assert cache_seconds("s-maxage=5") == 300


async def test_cached_keys_keep_serving_while_the_control_plane_is_down(
    cp: FakeControlPlane, signer: Signer
) -> None:
    clock = Clock()
    v = verifier(cp, clock=clock, refetch_interval=10)
    await v.verify(signer.token(ORG))
    for fault in ("down", "500", "garbage"):
        cp.jwks_fault = fault
        clock.now += 400
        assert (await v.verify(signer.token(ORG)))["org_id"] == ORG
        await revalidated(v)  # the background revalidation has failed
        assert (await v.verify(signer.token(ORG)))["org_id"] == ORG
        assert v.last_error
    assert cp.jwks_requests == 4


async def test_a_slow_jwks_endpoint_times_out_into_invalid_token(signer: Signer) -> None:
    calls = 0

    async def hang(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        await asyncio.sleep(5)  # an endpoint that hangs past the fetch timeout
        return httpx.Response(200, json={"keys": [signer.jwk]})

    v = JWKSVerifier(
        jwks_url=JWKS_URL,
        issuer=ISSUER,
        audience=org_audience(ORG),
        org_id=ORG,
        http=httpx.AsyncClient(transport=httpx.MockTransport(hang)),
        fetch_timeout=0.2,
    )
    started = time.monotonic()
    outcomes = await asyncio.gather(
        *(v.verify(signer.token(ORG)) for _ in range(10)), return_exceptions=True
    )
    assert all(isinstance(o, InvalidToken) for o in outcomes)
    assert time.monotonic() - started < 2
    assert calls == 1
    assert "Timeout" in v.last_error


async def test_an_unreachable_control_plane_at_start_is_retried_only_after_the_interval(
    cp: FakeControlPlane, signer: Signer
) -> None:
    clock = Clock()
    cp.jwks_fault = "down"
    v = verifier(cp, clock=clock, refetch_interval=30)
    for _ in range(5):
        with pytest.raises(InvalidToken):
            await v.verify(signer.token(ORG))
    assert cp.jwks_requests == 1
    cp.jwks_fault = None
    clock.now += 30
    assert (await v.verify(signer.token(ORG)))["org_id"] == ORG
    assert cp.jwks_requests == 2


def test_parse_jwks_keeps_only_public_allowlisted_signing_keys(signer: Signer) -> None:
    private_ec = jwt.algorithms.ECAlgorithm.to_jwk(signer.key.private_key, as_dict=True)
    document = {
        "keys": [
            signer.jwk,
            {**private_ec, "kid": "private", "alg": "ES256"},
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac", "alg": "HS256"},
            {**signer.jwk, "kid": "enc", "use": "enc"},
            {**signer.jwk, "kid": "../evil"},
            {"kty": "EC", "kid": "broken", "alg": "ES256", "crv": "P-256", "x": "!!"},
            "not an object",
        ]
    }
    assert set(parse_jwks(json.dumps(document).encode())) == {signer.kid}
    for garbage in (b"[]", b"{}", b"null", b"\xff", b'{"keys": 3}'):
        with pytest.raises(ValueError, match="JWKS"):
            parse_jwks(garbage)


def test_leeway_above_thirty_seconds_is_refused() -> None:
    with pytest.raises(ValueError, match="leeway"):
        JWKSVerifier(jwks_url=JWKS_URL, issuer=ISSUER, audience="a", org_id=ORG, leeway=31)


async def test_a_remembered_token_still_expires(
    cp: FakeControlPlane, signer: Signer, monkeypatch: pytest.MonkeyPatch
) -> None:
    v = verifier(cp)
    token = signer.token(ORG, ttl=60)
    first = await v.verify(token)
    first["org_role"] = "owner"  # callers get copies: the remembered claims stay intact
    assert (await v.verify(token))["org_role"] == "member"
    later = time.time() + 60 + 31
    monkeypatch.setattr("org_instance.verifier.time.time", lambda: later)
    with pytest.raises(InvalidToken):
        await v.verify(token)


async def test_a_withdrawn_key_stops_working_even_for_remembered_tokens(
    cp: FakeControlPlane, signer: Signer
) -> None:
    clock = Clock()
    v = verifier(cp, clock=clock, refetch_interval=10)
    token = signer.token(ORG)
    await v.verify(token)
    cp.signers = [Signer()]  # the control plane withdraws the key (e.g. after a compromise)
    clock.now += 301
    await v.verify(token)  # still served from cache while the JWKS is revalidated
    await revalidated(v)
    with pytest.raises(InvalidToken):
        await v.verify(token)
