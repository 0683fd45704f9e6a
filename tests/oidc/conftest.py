"""Fixtures of the OpenID provider tests: a platform admin, a user signed in to the UI of the
in-process app, and PKCE pairs."""

from __future__ import annotations

from typing import Any

import pytest
from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from litestar.testing import AsyncTestClient

from tests.support.api import add_user
from tests.support.oidc import ui_sign_in


@pytest.fixture
async def signed_in(client: AsyncTestClient[Any]) -> str:
    """``ann@example.com`` signed in to the UI of ``client`` (cookies); answers her id."""
    user_id = await add_user(client, "ann@example.com")
    await ui_sign_in(client, "ann@example.com")
    return user_id


@pytest.fixture
def pkce() -> tuple[str, str]:
    """A fresh (verifier, S256 challenge) pair."""
    verifier = generate_token(64)
    return verifier, create_s256_code_challenge(verifier)
