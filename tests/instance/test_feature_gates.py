"""Feature gates of the org instance: the token's ``features`` claim opens or closes routes."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient

from tests.instance.helpers import Signer, bearer
from tests.support.api import assert_problem


async def test_routes_of_a_feature_missing_from_the_token_answer_403_with_its_key(
    instance: AsyncTestClient[Any], signer: Signer, org_id: str
) -> None:
    files_only = bearer(signer.token(org_id, features=["files"]))
    refused = await instance.post("/api/v1/sessions", headers=files_only, json={"title": "x"})
    body = assert_problem(refused, 403, "feature_disabled")
    assert body["feature"] == "chat"
    listed = await instance.get("/api/v1/sessions", headers=files_only)
    assert_problem(listed, 403, "feature_disabled")
    assert (await instance.get("/api/v1/files", headers=files_only)).status_code == 200

    chat_only = bearer(signer.token(org_id, features=["chat"]))
    assert_problem(await instance.get("/api/v1/files", headers=chat_only), 403, "feature_disabled")
    created = await instance.post("/api/v1/sessions", headers=chat_only, json={"title": "x"})
    assert created.status_code == 201, created.text
    # Routes of no feature stay open, and the gate never answers before authentication.
    assert (
        await instance.get("/api/v1/usage", headers=bearer(signer.token(org_id, features=[])))
    ).status_code == 200
    assert (await instance.get("/api/v1/files")).status_code == 401
