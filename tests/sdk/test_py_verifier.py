"""The SDK's token verifier against real control-plane keys (ES256 and EdDSA, made and
signed by the control plane's own key code) and a JWKS served through httpx.MockTransport.

Every forged or damaged token of the org instance's own verifier tests is refused here too;
the JWKS is fetched once, refetched for an unknown ``kid`` at most once per interval (one fetch
for all requests waiting), and the cached keys keep serving while the control plane is away.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from orgplane_sdk.contract import org_audience
from orgplane_sdk.verifier import InvalidToken, TokenVerifier, signing_keys

from tests.instance.helpers import ISSUER, JWKS_URL, FakeControlPlane, Signer
from tests.instance.test_verifier import ORG, OTHER, Clock, bad_tokens


def verifier(cp: FakeControlPlane, **kw: Any) -> TokenVerifier:
    return TokenVerifier(
        jwks_url=JWKS_URL,
        issuer=ISSUER,
        audience=org_audience(ORG),
        org_id=ORG,
        http=cp.client(),
        **kw,
    )


async def test_valid_tokens_verify_and_give_their_claims(
    cp: FakeControlPlane, signer: Signer
) -> None:
    ed = Signer("EdDSA")
    cp.signers.append(ed)
    v = verifier(cp)
    for key in (signer, ed, signer, ed):
        claims = await v.verify(key.token(ORG, org_role="admin", sub="user-1"))
        assert (claims["org_id"], claims["sub"], claims["org_role"]) == (ORG, "user-1", "admin")
        assert claims["scope"] == "org:read org:write org:admin"
        assert claims["aud"] == org_audience(ORG)
    assert cp.jwks_requests == 1


async def test_every_bad_token_is_refused_at_the_cost_of_one_fetch(
    cp: FakeControlPlane, signer: Signer
) -> None:
    v = verifier(cp)
    for name, token in bad_tokens(signer).items():
        with pytest.raises(InvalidToken) as caught:
            await v.verify(token)
        assert caught.value.code == "invalid_token", name
    assert cp.jwks_requests <= 1
    assert (await v.verify(signer.token(ORG)))["org_id"] == ORG


async def test_another_orgs_token_is_refused_even_signed_by_the_real_key(
    cp: FakeControlPlane, signer: Signer
) -> None:
    v = verifier(cp)
    with pytest.raises(InvalidToken, match="rejected"):  # its audience
        await v.verify(signer.token(OTHER, aud=org_audience(OTHER)))
    with pytest.raises(InvalidToken, match="another org"):  # our audience, its org_id
        await v.verify(signer.token(ORG, org_id=OTHER))


async def test_a_key_signs_only_with_its_own_algorithm(
    cp: FakeControlPlane, signer: Signer
) -> None:
    ed = Signer("EdDSA")
    cp.signers.append(ed)
    forged = ed.raw(signer.full_claims(ORG), {"kid": signer.kid, "typ": "at+jwt"})
    with pytest.raises(InvalidToken, match="algorithm does not match"):
        await verifier(cp).verify(forged)


async def test_clock_skew_is_allowed_up_to_the_leeway(cp: FakeControlPlane, signer: Signer) -> None:
    now = int(time.time())
    hdr = {"kid": signer.kid, "typ": "at+jwt"}
    # Far inside (2 s) and far outside (60 s) the 5 s leeway, so the test's own run time
    # cannot move either across it.
    just_expired = signer.raw(signer.full_claims(ORG, exp=now - 2), hdr)
    long_expired = signer.raw(signer.full_claims(ORG, exp=now - 60), hdr)
    v = verifier(cp, leeway=5)
    assert (await v.verify(just_expired))["org_id"] == ORG
    with pytest.raises(InvalidToken, match="ExpiredSignature"):
        await v.verify(long_expired)
    with pytest.raises(ValueError, match="leeway"):
        verifier(cp, leeway=31)


async def test_an_unknown_kid_refetches_at_most_once_per_interval(
    cp: FakeControlPlane, signer: Signer
) -> None:
    clock = Clock()
    v = verifier(cp, clock=clock, refetch_interval=30)
    await v.verify(signer.token(ORG))
    stranger = Signer()
    for expected in (1, 2, 3):  # just fetched, then once per interval however many requests
        for _ in range(10):
            with pytest.raises(InvalidToken, match="unknown key"):
                await v.verify(stranger.token(ORG))
        assert cp.jwks_requests == expected
        clock.now += 31
    # A key the control plane rotates in is used on first sight (past the interval).
    cp.signers.append(stranger)
    assert (await v.verify(stranger.token(ORG)))["org_id"] == ORG
    assert cp.jwks_requests == 4


async def test_concurrent_misses_share_one_fetch(signer: Signer) -> None:
    release = asyncio.Event()

    async def held(request: httpx.Request) -> httpx.Response:
        await release.wait()
        return httpx.Response(200, json={"keys": [signer.jwk]})

    http = httpx.AsyncClient(transport=httpx.MockTransport(held))
    v = TokenVerifier(
        jwks_url=JWKS_URL, issuer=ISSUER, audience=org_audience(ORG), org_id=ORG, http=http
    )
    waiting = [asyncio.create_task(v.verify(signer.token(ORG))) for _ in range(20)]
    await asyncio.sleep(0)  # every verify is now waiting for the one fetch
    release.set()
    assert all(c["org_id"] == ORG for c in await asyncio.gather(*waiting))
    assert v.fetches == 1


@pytest.mark.parametrize("fault", ["down", "garbage", "500"])
async def test_cached_keys_keep_serving_while_the_control_plane_is_away(
    cp: FakeControlPlane, signer: Signer, fault: str
) -> None:
    clock = Clock()
    v = verifier(cp, clock=clock)
    await v.verify(signer.token(ORG))
    cp.jwks_fault = fault
    clock.now += 301  # past the JWKS's age: refetched, and the refetch fails
    assert (await v.verify(signer.token(ORG)))["org_id"] == ORG
    assert cp.jwks_requests == 2
    assert v.last_error
    assert v.has_keys


async def test_without_any_jwks_every_token_is_refused(
    cp: FakeControlPlane, signer: Signer
) -> None:
    cp.jwks_fault = "down"
    v = verifier(cp)
    with pytest.raises(InvalidToken, match="unknown key"):
        await v.verify(signer.token(ORG))
    assert not await v.refresh()
    assert "ConnectError" in v.last_error


def test_only_public_allowlisted_signing_keys_are_taken_from_a_jwks(signer: Signer) -> None:
    ed = Signer("EdDSA")
    private = {**signer.jwk, "kid": "with-d", "d": "AAAA"}
    hmac = {"kty": "oct", "kid": "hs", "alg": "HS256", "k": "c2VjcmV0"}
    encryption = {**ed.jwk, "kid": "enc", "use": "enc"}
    bad_kid = {**ed.jwk, "kid": "../x"}
    document = {"keys": [signer.jwk, ed.jwk, private, hmac, encryption, bad_kid, "junk"]}
    assert set(signing_keys(document)) == {signer.kid, ed.kid}
    with pytest.raises(ValueError, match="not a JWKS"):
        signing_keys(["not", "a", "jwks"])
