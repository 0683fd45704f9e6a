"""The control plane checks a token's header as an org instance does (one ``check_header``).

Before the check was shared, only the instance refused a ``crit`` header and a ``kid`` outside
``[A-Za-z0-9._-]{1,64}``. The control plane left ``crit`` to PyJWT, which accepts the ``b64``
extension (RFC 7797), so a token the platform's key signed with ``crit: ["b64"]`` was a valid
access token here and an invalid org token there; and it looked up any kid of up to 64
characters, newlines and spaces included. Run against the old code, both tests failed: the
first answered 200, the second returned the kid.
"""

from __future__ import annotations

import json
from typing import Any

import jwt
import pytest
from jwt.algorithms import get_default_algorithms
from jwt.utils import base64url_encode
from litestar.testing import AsyncTestClient

from control_plane.signing.jws import unverified_kid
from orgplane_wire.jose_header import InvalidToken
from tests.conftest import TEST_SECRET
from tests.support.api import add_user, assert_problem
from tests.support.tokens import login_body, platform_key


def _b64(value: dict[str, Any]) -> str:
    return base64url_encode(json.dumps(value).encode()).decode()


async def test_a_platform_signed_token_with_a_crit_header_is_refused(
    client: AsyncTestClient[Any],
) -> None:
    await add_user(client, "crit@example.com")
    real = (await login_body(client, "crit@example.com"))["access_token"]
    claims = jwt.decode(real, options={"verify_signature": False})
    key = await platform_key(client, TEST_SECRET)
    header = {"alg": key.alg, "kid": key.kid, "typ": "at+jwt"}

    def signed(**extra: Any) -> str:
        # By hand: PyJWT's encode drops ``"b64": true`` (the default), and then its own decode
        # refuses the ``crit`` that names it as missing.
        signing_input = f"{_b64(header | extra)}.{_b64(claims)}".encode()
        algorithm = get_default_algorithms()[key.alg]
        signature = algorithm.sign(signing_input, algorithm.prepare_key(key.private_key))
        return f"{signing_input.decode()}.{base64url_encode(signature).decode()}"

    # The same claims under the plain header: the claims are good, only the header differs.
    plain = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {signed()}"})
    assert plain.status_code == 200, plain.text
    with_crit = signed(crit=["b64"], b64=True)
    refused = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {with_crit}"})
    assert_problem(refused, 401, "invalid_token")
    as_cookie = await client.get("/api/v1/me", headers={"Cookie": f"orgplane_session={with_crit}"})
    assert as_cookie.status_code == 401


def _token(header: dict[str, Any]) -> str:
    """A compact JWS with ``header`` (its payload and signature are never reached)."""
    return f"{_b64(header)}.e30.c2ln"


@pytest.mark.parametrize(
    "kid", ["20261207-abc def", "20261207-abc\n", "key/../1", "k\u00e9y", "x" * 65, ""]
)
def test_a_kid_outside_the_pattern_is_refused_before_any_key_lookup(kid: str) -> None:
    with pytest.raises(InvalidToken) as refused:
        unverified_kid(_token({"alg": "ES256", "typ": "at+jwt", "kid": kid}))
    assert str(refused.value) == "bad key id"


def test_the_kid_of_a_good_header_is_read() -> None:
    assert unverified_kid(_token({"alg": "ES256", "typ": "at+jwt", "kid": "2026-ab.c_d"})) == (
        "2026-ab.c_d"
    )
