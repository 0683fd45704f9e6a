"""Every refusal of the code flow, with the OAuth error a client expects, and nothing issued:
a wrong redirect URI (shown, never redirected), no PKCE, plain PKCE, a wrong verifier, a
reused code (which also revokes what it bought), an expired code, a wrong client secret, and a
public client without PKCE. On SQLite and PostgreSQL (the ``client`` fixture)."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from litestar.testing import AsyncTestClient
from sqlalchemy import update
from sqlmodel import col, select

from control_plane.db.models import AuditEvent, AuthorizationCode, User, utcnow
from tests.support.api import PASSWORD, add_user, direct_db
from tests.support.oidc import (
    REDIRECT_URI,
    callback_params,
    follow_to_client,
    register_client,
    ui_sign_in,
)

Client = AsyncTestClient[Any]


def authorize_url(client_id: str, challenge: str | None, **extra: str) -> str:
    params = {
        "client_id": client_id,
        "redirect_uri": REDIRECT_URI,
        "response_type": "code",
        "scope": "openid email",
        "state": "st-1",
        "nonce": "n-1",
        **extra,
    }
    if challenge is not None:
        params |= {"code_challenge": challenge, "code_challenge_method": "S256"}
    return "/oauth/authorize?" + urlencode({k: v for k, v in params.items() if v != "-"})


async def get_code(client: Client, client_id: str, challenge: str, **extra: str) -> str:
    answer = await follow_to_client(client, authorize_url(client_id, challenge, **extra))
    return callback_params(answer)["code"]


async def redeem(
    client: Client, created: dict[str, Any], code: str, verifier: str | None, **extra: Any
) -> Any:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
    if verifier is not None:
        data["code_verifier"] = verifier
    auth = None
    if created.get("client_secret"):
        auth = (created["client_id"], extra.pop("secret", created["client_secret"]))
    else:
        data["client_id"] = created["client_id"]
    return await client.post("/oauth/token", data={**data, **extra}, auth=auth)


def assert_oauth_error(answer: Any, status: int, error: str) -> None:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["error"] == error, body
    assert "access_token" not in body
    assert "id_token" not in body
    assert answer.headers["cache-control"] == "no-store"


async def codes(client: Client) -> list[AuthorizationCode]:
    async with direct_db(client) as db:
        return list((await db.exec(select(AuthorizationCode))).all())


async def test_unregistered_redirect_uri_is_shown_never_redirected(
    client: Client, admin: dict[str, str], signed_in: str, pkce: tuple[str, str]
) -> None:
    created = await register_client(client, admin)
    for uri in (
        "http://127.0.0.1:47401/callback/../evil",
        "http://127.0.0.1:47401/callbacK",
        "https://evil.example/callback",
        "-",  # missing
    ):
        answer = await follow_to_client(
            client, authorize_url(created["client_id"], pkce[1], redirect_uri=uri)
        )
        assert answer.status_code == 400, answer.text
        assert "location" not in answer.headers
        assert "return address it did not register" in answer.text
    unknown = await follow_to_client(client, authorize_url("oc-nobody", pkce[1]))
    assert unknown.status_code == 400
    assert "not registered" in unknown.text
    assert "location" not in unknown.headers
    assert await codes(client) == []


async def test_pkce_is_required_and_s256_only(
    client: Client, admin: dict[str, str], signed_in: str, pkce: tuple[str, str]
) -> None:
    created = await register_client(client, admin)
    public = await register_client(client, admin, public=True)
    cases = {
        "no challenge": authorize_url(created["client_id"], None),
        "public client, no challenge": authorize_url(public["client_id"], None),
        "plain": authorize_url(created["client_id"], None, code_challenge=pkce[0][:43])
        + "&code_challenge_method=plain",
        "method missing (plain by default)": authorize_url(
            created["client_id"], None, code_challenge=pkce[1]
        ),
        "not a challenge": authorize_url(created["client_id"], "x" * 20),
    }
    for name, url in cases.items():
        params = callback_params(await follow_to_client(client, url))
        assert params["error"] == "invalid_request", name
        assert params["state"] == "st-1", name
        assert "code" not in params, name
    wrong_type = authorize_url(created["client_id"], pkce[1], response_type="token")
    params = callback_params(await follow_to_client(client, wrong_type))
    assert params["error"] == "unsupported_response_type"
    no_openid = authorize_url(created["client_id"], pkce[1], scope="email")
    assert callback_params(await follow_to_client(client, no_openid))["error"] == "invalid_scope"
    assert await codes(client) == []


async def test_wrong_verifier_burns_the_code(
    client: Client, admin: dict[str, str], signed_in: str, pkce: tuple[str, str]
) -> None:
    created = await register_client(client, admin)
    code = await get_code(client, created["client_id"], pkce[1])
    for verifier in ("A" * 43, None):
        answer = await redeem(client, created, code, verifier)
        assert_oauth_error(answer, 400, "invalid_grant")
    # The right verifier comes too late: the first wrong try spent the code.
    assert_oauth_error(await redeem(client, created, code, pkce[0]), 400, "invalid_grant")
    [row] = await codes(client)
    assert row.used_at is not None
    assert row.issued_jti == ""


async def test_public_client_without_verifier_gets_nothing(
    client: Client, admin: dict[str, str], signed_in: str, pkce: tuple[str, str]
) -> None:
    public = await register_client(client, admin, public=True)
    code = await get_code(client, public["client_id"], pkce[1])
    assert_oauth_error(await redeem(client, public, code, None), 400, "invalid_grant")
    # A public client that sends a secret is not one we know.
    code = await get_code(client, public["client_id"], pkce[1])
    answer = await redeem(client, public, code, pkce[0], client_secret="guess")
    assert_oauth_error(answer, 401, "invalid_client")


async def test_wrong_client_secret_and_wrong_client(
    client: Client, admin: dict[str, str], signed_in: str, pkce: tuple[str, str]
) -> None:
    created = await register_client(client, admin)
    other = await register_client(client, admin)
    code = await get_code(client, created["client_id"], pkce[1])
    answer = await redeem(client, created, code, pkce[0], secret="ocs_wrong")
    assert_oauth_error(answer, 401, "invalid_client")
    assert answer.headers["www-authenticate"].startswith("Basic")
    # Another client's valid credentials cannot redeem it (and burn it trying).
    assert_oauth_error(await redeem(client, other, code, pkce[0]), 400, "invalid_grant")
    assert_oauth_error(await redeem(client, created, code, pkce[0]), 400, "invalid_grant")
    # A failed client authentication spends nothing: a fresh code survives a wrong secret.
    code = await get_code(client, created["client_id"], pkce[1])
    assert_oauth_error(
        await redeem(client, created, code, pkce[0], secret=""), 401, "invalid_client"
    )
    assert (await redeem(client, created, code, pkce[0])).status_code == 200


async def test_wrong_redirect_uri_at_the_token_endpoint(
    client: Client, admin: dict[str, str], signed_in: str, pkce: tuple[str, str]
) -> None:
    created = await register_client(
        client, admin, redirect_uris=[REDIRECT_URI, "http://127.0.0.1:47401/other"]
    )
    code = await get_code(client, created["client_id"], pkce[1])
    answer = await redeem(
        client, created, code, pkce[0], redirect_uri="http://127.0.0.1:47401/other"
    )
    assert_oauth_error(answer, 400, "invalid_grant")


async def test_reused_code_revokes_what_it_issued(
    client: Client, admin: dict[str, str], signed_in: str, pkce: tuple[str, str]
) -> None:
    created = await register_client(client, admin)
    code = await get_code(client, created["client_id"], pkce[1])
    first = await redeem(client, created, code, pkce[0])
    assert first.status_code == 200, first.text
    bearer = {"Authorization": f"Bearer {first.json()['access_token']}"}
    assert (await client.get("/oauth/userinfo", headers=bearer)).status_code == 200
    assert_oauth_error(await redeem(client, created, code, pkce[0]), 400, "invalid_grant")
    refused = await client.get("/oauth/userinfo", headers=bearer)
    assert refused.status_code == 401, refused.text
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]
    async with direct_db(client) as db:
        replays = (
            await db.exec(select(AuditEvent).where(col(AuditEvent.action) == "oauth.code_replay"))
        ).all()
    assert [e.target_id for e in replays] == [created["client_id"]]


async def test_expired_code(
    client: Client, admin: dict[str, str], signed_in: str, pkce: tuple[str, str]
) -> None:
    created = await register_client(client, admin)
    code = await get_code(client, created["client_id"], pkce[1])
    [row] = await codes(client)
    assert row.expires_at - row.created_at == timedelta(seconds=60)
    assert row.code_hash != code
    assert code not in row.code_hash
    async with direct_db(client) as db:
        await db.exec(update(AuthorizationCode).values(expires_at=utcnow() - timedelta(seconds=1)))
        await db.commit()
    assert_oauth_error(await redeem(client, created, code, pkce[0]), 400, "invalid_grant")
    [row] = await codes(client)
    assert row.used_at is None
    assert row.issued_jti == ""


async def test_signed_out_user_signs_in_and_comes_back(
    client: Client, admin: dict[str, str], pkce: tuple[str, str]
) -> None:
    created = await register_client(client, admin)
    client.cookies.clear()
    answer = await follow_to_client(client, authorize_url(created["client_id"], pkce[1]))
    assert answer.status_code == 200
    assert 'name="password"' in answer.text
    assert await codes(client) == []
    wanted = re.search(r'name="next" value="([^"]+)"', answer.text)
    assert wanted
    assert wanted.group(1).startswith("/ui/oauth/authorize?client_id=")
    token = re.search(r'name="_csrf_token" value="([^"]+)"', answer.text)
    assert token
    await add_user(client, "bob@example.com")
    fields = {"email": "bob@example.com", "password": PASSWORD, "_csrf_token": token.group(1)}
    signed = await client.post(
        "/ui/login",
        data={**fields, "next": html.unescape(wanted.group(1))},
        follow_redirects=False,
    )
    assert signed.status_code == 303, signed.text
    back = await follow_to_client(client, signed.headers["location"])
    assert callback_params(back)["state"] == "st-1"
    [row] = await codes(client)
    assert row.client_id == created["client_id"]


async def test_password_change_voids_an_unredeemed_code(
    client: Client, admin: dict[str, str], signed_in: str, pkce: tuple[str, str]
) -> None:
    created = await register_client(client, admin)
    code = await get_code(client, created["client_id"], pkce[1])
    async with direct_db(client) as db:
        user = await db.get(User, signed_in)
        assert user is not None
        user.session_version += 1  # what a password change or reset does
        db.add(user)
        await db.commit()
    assert_oauth_error(await redeem(client, created, code, pkce[0]), 400, "invalid_grant")


async def test_consent_needs_the_forms_csrf_token(
    client: Client, admin: dict[str, str], signed_in: str, pkce: tuple[str, str]
) -> None:
    created = await register_client(client, admin, first_party=False)
    page = await follow_to_client(client, authorize_url(created["client_id"], pkce[1]))
    assert page.status_code == 200, page.text
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
    fields = {k: html.unescape(v) for k, v in fields.items() if k != "_csrf_token"}
    forged = await client.post(
        "/ui/oauth/authorize", data={**fields, "decision": "allow"}, follow_redirects=False
    )
    assert forged.status_code == 403, forged.text
    other_site = await client.post(
        "/ui/oauth/authorize",
        data={**fields, "decision": "allow"},
        headers={"Origin": "https://evil.example"},
        follow_redirects=False,
    )
    assert other_site.status_code == 403, other_site.text
    assert await codes(client) == []


async def test_client_secret_post_and_not_both_methods(
    client: Client, admin: dict[str, str], signed_in: str, pkce: tuple[str, str]
) -> None:
    created = await register_client(client, admin)
    code = await get_code(client, created["client_id"], pkce[1])
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": pkce[0],
        "client_id": created["client_id"],
        "client_secret": created["client_secret"],
    }
    both = await client.post(
        "/oauth/token", data=form, auth=(created["client_id"], created["client_secret"])
    )
    assert_oauth_error(both, 400, "invalid_request")
    posted = await client.post("/oauth/token", data=form)
    assert posted.status_code == 200, posted.text
    assert set(posted.json()) == {"access_token", "token_type", "expires_in", "scope", "id_token"}


async def test_text_the_database_cannot_store_is_refused_not_a_server_error(
    client: Client, admin: dict[str, str], signed_in: str, pkce: tuple[str, str]
) -> None:
    created = await register_client(client, admin)
    nul = "a\x00b"
    page = await follow_to_client(client, authorize_url(nul, pkce[1]))
    assert page.status_code == 400, page.text
    redeemed = await client.post(
        "/oauth/token",
        data={"grant_type": "authorization_code", "code": "occ_" + nul, "client_id": nul},
    )
    assert 400 <= redeemed.status_code < 500, redeemed.text
    bad_state = authorize_url(created["client_id"], pkce[1], state=nul, nonce=nul)
    answer = await follow_to_client(client, bad_state)
    assert 300 <= answer.status_code < 500, answer.text
    gone = await client.delete("/api/v1/oauth/clients/a%00b", headers=admin)
    assert 400 <= gone.status_code < 500, gone.text
    for body, code in (
        ({"name": nul, "type": "public", "redirect_uris": [REDIRECT_URI]}, "invalid_name"),
        ({"name": "W", "type": "public", "redirect_uris": [REDIRECT_URI + nul]}, None),
        ({"name": "W", "type": "public", "redirect_uris": [REDIRECT_URI + " x"]}, None),
    ):
        registered = await client.post("/api/v1/oauth/clients", json=body, headers=admin)
        assert registered.status_code == 400, registered.text
        assert registered.json()["code"] == (code or "invalid_redirect_uri")


async def test_prompt(client: Client, admin: dict[str, str], pkce: tuple[str, str]) -> None:
    first = await register_client(client, admin, first_party=True)
    third = await register_client(client, admin, first_party=False)

    async def answer(created: dict[str, Any], prompt: str) -> Any:
        url = authorize_url(created["client_id"], pkce[1], prompt=prompt)
        return await follow_to_client(client, url)

    async def error(created: dict[str, Any], prompt: str) -> str | None:
        return callback_params(await answer(created, prompt)).get("error")

    # Signed out: prompt=none never shows the sign-in page.
    assert await error(first, "none") == "login_required"
    await add_user(client, "ann@example.com")
    await ui_sign_in(client, "ann@example.com")
    assert "code" in callback_params(await answer(first, "none"))
    assert await error(third, "none") == "consent_required"
    consent_page = await answer(first, "consent")
    assert consent_page.status_code == 200, consent_page.text
    assert "Allow Wiki?" in consent_page.text
    assert await error(first, "login") == "login_required"
    assert await error(first, "none consent") == "invalid_request"
    assert await error(first, "bogus") == "invalid_request"
    assert "code" in callback_params(await answer(first, "select_account"))
