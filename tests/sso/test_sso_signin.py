"""Signing in through a real OpenID provider (oidc-provider), on SQLite and PostgreSQL: accounts
made just in time, linking by verified email only, allowed domains, state and nonce, and the
claim-mapping rules applied at each sign-in."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlmodel import col, select

from control_plane.db.models import AuditEvent, Membership, User
from control_plane.db.sso_models import IdentityLink
from control_plane.sso.base import Attempt, ProviderConfig, SsoError
from control_plane.sso.oidc import OidcProvider
from tests.sso.conftest import CALLBACK, add_provider, sso_sign_in
from tests.support.api import PASSWORD, add_user, assert_problem, direct_db, login
from tests.support.idp import CLIENT_ID, CLIENT_SECRET, Idp, sign_in_headless
from tests.support.orgs import add_member, make_org


async def _memberships(client: AsyncTestClient[Any], email: str) -> dict[str, tuple[str, str]]:
    """{org id: (role, source)} of the user with ``email``."""
    async with direct_db(client) as db:
        user = (await db.exec(select(User).where(col(User.email) == email))).one()
        rows = await db.exec(select(Membership).where(col(Membership.user_id) == user.id))
        return {m.org_id: (m.role, m.source) for m in rows}


async def _rule(client: AsyncTestClient[Any], admin: dict[str, str], pid: str, **body: Any) -> None:
    answer = await client.post(f"/api/v1/identity-providers/{pid}/rules", headers=admin, json=body)
    assert answer.status_code == 201, answer.text


async def test_jit_account_and_memberships_follow_the_groups_at_each_sign_in(
    client: AsyncTestClient[Any], admin: dict[str, str], idp: Idp, provider: dict[str, Any]
) -> None:
    eng = await make_org(client, admin, "eng")
    ops = await make_org(client, admin, "ops")
    misc = await make_org(client, admin, "misc")
    pid = provider["id"]
    await _rule(client, admin, pid, claim="groups", value="engineers", org="eng", role="member")
    await _rule(client, admin, pid, claim="groups", value="eng-leads", org="eng", role="admin")
    await _rule(client, admin, pid, claim="groups", value="ops", org=ops["id"], role="member")
    await _rule(client, admin, pid, claim="email_domain", value="acme.test", org="misc")
    idp.set_account("alice", email="Alice@Acme.test", email_verified=True, name="Alice",
                    groups=["engineers", "eng-leads"])  # fmt: skip

    done = await sso_sign_in(client, "alice")
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/ui/orgs"
    assert "orgplane_session" in done.cookies
    assert await _memberships(client, "alice@acme.test") == {
        eng["id"]: ("admin", f"idp:{pid}"),
        misc["id"]: ("member", f"idp:{pid}"),
    }
    page = await client.get("/ui/orgs")
    assert page.status_code == 200
    assert "eng" in page.text

    # A manual membership in ops is not the provider's: kept whatever the claims say.
    await add_member(client, admin, "ops", "alice@acme.test", "admin")
    idp.set_account("alice", email="alice@acme.test", email_verified=True, groups=["engineers"])
    assert (await sso_sign_in(client, "alice")).status_code == 303
    after = await _memberships(client, "alice@acme.test")
    assert after[eng["id"]] == ("member", f"idp:{pid}")  # eng-leads gone: admin -> member
    assert after[ops["id"]] == ("admin", "")

    idp.set_account("alice", email="alice@other.test", email_verified=True, groups=[])
    assert (await sso_sign_in(client, "alice")).status_code == 303
    assert await _memberships(client, "alice@acme.test") == {ops["id"]: ("admin", "")}
    async with direct_db(client) as db:
        users = (await db.exec(select(User).where(col(User.email) == "alice@acme.test"))).all()
        assert len(users) == 1  # found by (provider, subject), not by the new email
        actions = [
            (e.action, e.outcome, e.detail.get("source"))
            for e in await db.exec(select(AuditEvent).order_by(col(AuditEvent.at)))
            if e.action.startswith("member.") and e.detail.get("source")
        ]
    assert ("member.update", "success", f"idp:{pid}") in actions
    assert actions.count(("member.remove", "success", f"idp:{pid}")) == 2
    # JIT accounts have no password.
    password = await client.post(
        "/api/v1/auth/login", json={"email": "alice@acme.test", "password": "!sso"}
    )
    assert_problem(password, 401, "invalid_credentials")


async def test_unverified_email_never_links_and_verified_one_does(
    client: AsyncTestClient[Any], admin: dict[str, str], idp: Idp, provider: dict[str, Any]
) -> None:
    bob_id = await add_user(client, "bob@acme.test")
    idp.set_account("bob-at-idp", email="bob@acme.test", email_verified=False)
    refused = await sso_sign_in(client, "bob-at-idp")
    assert refused.status_code == 401
    assert "has not verified your email" in refused.text
    assert "orgplane_session" not in refused.cookies
    async with direct_db(client) as db:
        assert (await db.exec(select(IdentityLink))).all() == []
        failure = (
            await db.exec(select(AuditEvent).where(col(AuditEvent.outcome) == "failure"))
        ).all()
        assert [e.detail["reason"] for e in failure] == ["email_not_verified"]

    idp.set_account("bob-at-idp", email="bob@acme.test", email_verified=True)
    assert (await sso_sign_in(client, "bob-at-idp")).status_code == 303
    async with direct_db(client) as db:
        [link] = (await db.exec(select(IdentityLink))).all()
        assert (link.user_id, link.subject) == (bob_id, "bob-at-idp")


async def test_disallowed_domain_and_no_jit_are_refused(
    client: AsyncTestClient[Any], admin: dict[str, str], idp: Idp
) -> None:
    await add_provider(client, admin, idp, allowed_domains=["Acme.TEST"], jit=False)
    idp.set_account("eve", email="eve@evil.test", email_verified=True)
    refused = await sso_sign_in(client, "eve")
    assert refused.status_code == 401
    assert "email domain cannot sign in" in refused.text
    idp.set_account("carol", email="carol@acme.test", email_verified=True)
    refused = await sso_sign_in(client, "carol")
    assert refused.status_code == 401
    assert "no account for you" in refused.text
    async with direct_db(client) as db:
        assert (
            await db.exec(select(User).where(col(User.email) != "root@example.com"))
        ).all() == []


async def test_a_callback_with_another_state_or_without_the_cookie_is_refused(
    client: AsyncTestClient[Any], idp: Idp, provider: dict[str, Any]
) -> None:
    idp.set_account("dan", email="dan@acme.test", email_verified=True)
    start = await client.get("/ui/auth/sso/acme/start", follow_redirects=False)
    back = await sign_in_headless(start.headers["location"], "dan", CALLBACK)
    forged = back.replace("state=", "state=x")
    refused = await client.get(forged.removeprefix("http://127.0.0.1:8080"))
    assert refused.status_code == 401
    assert "state does not match" in refused.text
    start = await client.get("/ui/auth/sso/acme/start", follow_redirects=False)
    denied = await sign_in_headless(start.headers["location"], "nobody", CALLBACK)
    assert "error=access_denied" in denied
    refused = await client.get(denied.removeprefix("http://127.0.0.1:8080"))
    assert refused.status_code == 401
    assert "did not sign you in" in refused.text
    client.cookies.clear()  # the attempt cookie was cleared anyway; a fresh browser has none
    replayed = await client.get(back.removeprefix("http://127.0.0.1:8080"))
    assert replayed.status_code == 401
    assert "not finished in time" in replayed.text
    async with direct_db(client) as db:
        assert (await db.exec(select(User).where(col(User.email) == "dan@acme.test"))).all() == []


async def test_an_id_token_with_another_nonce_is_refused(idp: Idp) -> None:
    idp.set_account("fay", email="fay@acme.test", email_verified=True)
    oidc = OidcProvider(
        ProviderConfig("acme", idp.discovery_url, CLIENT_ID, CLIENT_SECRET, ("openid", "email"))
    )
    sent = Attempt("s" * 43, "n" * 43, "v" * 64, CALLBACK)
    back = await sign_in_headless(await oidc.authorization_url(attempt=sent), "fay", CALLBACK)
    params = dict(part.split("=", 1) for part in back.split("?", 1)[1].split("&"))
    other = Attempt(sent.state, "m" * 43, sent.code_verifier, CALLBACK)
    with pytest.raises(SsoError) as refused:
        await oidc.complete(attempt=other, params=params)
    assert refused.value.reason == "bad_nonce"


async def test_password_sign_in_of_a_linked_user_still_works_without_require_sso(
    client: AsyncTestClient[Any], idp: Idp, provider: dict[str, Any]
) -> None:
    await add_user(client, "gus@acme.test")
    idp.set_account("gus", email="gus@acme.test", email_verified=True)
    assert (await sso_sign_in(client, "gus")).status_code == 303
    await login(client, "gus@acme.test")


async def test_a_member_of_an_org_that_requires_sso_signs_in_through_it(
    client: AsyncTestClient[Any], admin: dict[str, str], idp: Idp, provider: dict[str, Any]
) -> None:
    await make_org(client, admin, "big", plan="enterprise")
    await add_user(client, "una@acme.test")
    await add_member(client, admin, "big", "una@acme.test", "admin")
    idp.set_account("una", email="una@acme.test", email_verified=True)
    done = await sso_sign_in(client, "una")
    assert done.status_code == 303, done.text
    # Signed in through the provider, the org admin may require it (a password session may not).
    federated = {"Authorization": f"Bearer {done.cookies['orgplane_session']}"}
    on = await client.put(
        "/api/v1/orgs/big/sso-requirement", headers=federated, json={"required": True}
    )
    assert on.status_code == 200, on.text
    refused = await client.post(
        "/api/v1/auth/login", json={"email": "una@acme.test", "password": PASSWORD}
    )
    assert_problem(refused, 401, "sso_required")
    client.cookies.clear()
    again = await sso_sign_in(client, "una")
    assert again.status_code == 303, again.text
    assert "orgplane_session" in again.cookies
