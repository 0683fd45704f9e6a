"""``/api/v1/identity-providers`` and an org's SSO requirement, on SQLite and PostgreSQL: the
secret is write-only and encrypted, bad input changes nothing, the dry run changes nothing,
and an org that requires SSO refuses its members' password sign-ins."""

from __future__ import annotations

import uuid
from typing import Any

from litestar.testing import AsyncTestClient
from sqlmodel import col, select

from control_plane.db.models import AuditEvent, Membership, User
from control_plane.db.sso_models import ClaimRule, IdentityProvider
from control_plane.tokens.access import login_tokens
from tests.support.api import PASSWORD, add_user, assert_problem, direct_db, login, runtime_of
from tests.support.idp import free_port
from tests.support.oidc import CSRF_FIELD
from tests.support.orgs import add_member, make_org, me_id, row_counts
from tests.support.tokens import exchange

SECRET = "very-secret-client-secret-123456"
PROVIDER = {
    "slug": "corp",
    "display_name": "Corp",
    "discovery_url": "https://idp.example/.well-known/openid-configuration",
    "client_id": "orgplane",
    "client_secret": SECRET,
}
BASE = "/api/v1/identity-providers"


async def _create(client: AsyncTestClient[Any], admin: dict[str, str], **body: Any) -> Any:
    return await client.post(BASE, headers=admin, json={**PROVIDER, **body})


async def test_the_client_secret_is_write_only_and_encrypted(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    created = await _create(client, admin, allowed_domains=["Corp.Example"])
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["has_client_secret"] is True
    assert body["allowed_domains"] == ["corp.example"]
    assert body["redirect_path"] == "/ui/auth/sso/corp/callback"
    pid = body["id"]
    changed = await client.patch(
        f"{BASE}/{pid}", headers=admin, json={"client_secret": "another-secret", "jit": False}
    )
    assert changed.status_code == 200
    assert changed.json()["jit"] is False
    listed = await client.get(BASE, headers=admin)
    one = await client.get(f"{BASE}/{pid}", headers=admin)
    for answer in (created, changed, listed, one):
        assert SECRET not in answer.text
        assert "another-secret" not in answer.text
        assert "client_secret_enc" not in answer.text
    async with direct_db(client) as db:
        row = await db.get(IdentityProvider, pid)
        assert row is not None
        assert "another-secret" not in row.client_secret_enc
        assert runtime_of(client).box.decrypt(row.client_secret_enc) == b"another-secret"
        events = (await db.exec(select(AuditEvent))).all()
    assert {"identity_provider.create", "identity_provider.update"} <= {e.action for e in events}
    assert all(SECRET not in str(e.detail) for e in events)


async def test_bad_input_is_refused_and_changes_nothing(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    await add_user(client, "max@example.com")
    member = await login(client, "max@example.com")
    before = await row_counts(client)
    assert_problem(await _create(client, member), 403, "platform_admin_required")
    insecure = await _create(client, admin, discovery_url="http://idp.example/.well-known/x")
    assert_problem(insecure, 400, "invalid_discovery_url")
    broken = await _create(client, admin, discovery_url="https://[::1/.well-known/x")
    assert_problem(broken, 400, "invalid_discovery_url")
    assert_problem(await _create(client, admin, kind="saml"), 400, "unknown_provider_kind")
    assert_problem(await _create(client, admin, slug="Not A Slug"), 400, "validation_error")
    assert_problem(await _create(client, admin, extra=1), 400, "validation_error")
    assert await row_counts(client) == before
    assert (await _create(client, admin)).status_code == 201
    assert_problem(await _create(client, admin), 409, "identity_provider_exists")
    assert_problem(await client.get(f"{BASE}/nope", headers=admin), 404)
    pid = (await client.get(BASE, headers=admin)).json()["items"][0]["id"]
    rules = f"{BASE}/{pid}/rules"
    owner = {"claim": "groups", "value": "x", "org": "nope", "role": "owner"}
    assert_problem(await client.post(rules, headers=admin, json=owner), 400, "validation_error")
    unknown = {**owner, "role": "member"}
    assert_problem(await client.post(rules, headers=admin, json=unknown), 404, "org_not_found")
    async with direct_db(client) as db:
        assert (await db.exec(select(ClaimRule))).all() == []


async def test_the_dry_run_answers_the_changes_and_changes_nothing(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    eng = await make_org(client, admin, "eng")
    ops = await make_org(client, admin, "ops")
    pid = (await _create(client, admin)).json()["id"]
    for value, org, role in (
        ("eng", "eng", "member"),
        ("lead", "eng", "admin"),
        ("ops", "ops", "member"),
    ):
        rule = {"claim": "groups", "value": value, "org": org, "role": role}
        assert (
            await client.post(f"{BASE}/{pid}/rules", headers=admin, json=rule)
        ).status_code == 201
    listed = await client.get(f"{BASE}/{pid}/rules", headers=admin)
    assert [r["value"] for r in listed.json()["items"]] == ["eng", "lead", "ops"]
    before = await row_counts(client)

    new = await client.post(
        f"{BASE}/{pid}/rules/preview", headers=admin, json={"claims": {"groups": ["eng", "lead"]}}
    )
    assert new.status_code == 200, new.text
    assert new.json() == {
        "dry_run": True,
        "changes": [{"org_id": eng["id"], "action": "add", "role": "admin", "previous_role": None}],
    }
    # For someone who holds ops by hand: ops is "unmanaged" (kept), eng is added.
    await add_user(client, "kim@example.com")
    await add_member(client, admin, "ops", "kim@example.com", "admin")
    kim = await me_id(client, await login(client, "kim@example.com"))
    before = await row_counts(client)
    preview = await client.post(
        f"{BASE}/{pid}/rules/preview",
        headers=admin,
        json={"claims": {"groups": ["eng", "ops"]}, "user_id": kim},
    )
    assert [(c["org_id"], c["action"]) for c in preview.json()["changes"]] == sorted(
        [(eng["id"], "add"), (ops["id"], "unmanaged")]
    )
    assert await row_counts(client) == before
    missing = {"claims": {}, "user_id": "nobody"}
    assert_problem(
        await client.post(f"{BASE}/{pid}/rules/preview", headers=admin, json=missing),
        404,
        "user_not_found",
    )


async def test_require_sso_needs_the_plan_feature_and_refuses_members_password_sign_in(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    await make_org(client, admin, "small")
    await make_org(client, admin, "big", plan="enterprise")
    await add_user(client, "mia@example.com")
    await add_user(client, "ned@example.com")
    await add_member(client, admin, "big", "mia@example.com", "admin")
    on = {"required": True}
    answer = await client.put("/api/v1/orgs/small/sso-requirement", headers=admin, json=on)
    assert_problem(answer, 403, "feature_not_in_plan")
    answer = await client.put("/api/v1/orgs/big/sso-requirement", headers=admin, json=on)
    assert_problem(answer, 409, "no_identity_provider")
    assert (await _create(client, admin)).status_code == 201
    mia = await login(client, "mia@example.com")  # an org admin signed in with a password
    answer = await client.put("/api/v1/orgs/big/sso-requirement", headers=mia, json=on)
    assert_problem(answer, 403, "sso_session_required")
    async with direct_db(client) as db:
        assert not any(e.action == "org.require_sso" for e in await db.exec(select(AuditEvent)))

    answer = await client.put("/api/v1/orgs/big/sso-requirement", headers=admin, json=on)
    assert answer.status_code == 200
    assert answer.json()["require_sso"] is True
    refused = await client.post(
        "/api/v1/auth/login", json={"email": "mia@example.com", "password": PASSWORD}
    )
    assert_problem(refused, 401, "sso_required")
    wrong = await client.post(
        "/api/v1/auth/login", json={"email": "mia@example.com", "password": "wrong password"}
    )
    assert_problem(wrong, 401, "invalid_credentials")  # told only to whom knows the password
    form = await client.get("/ui/login")
    assert "Sign in with Corp" in form.text  # the enabled provider's button
    token = CSRF_FIELD.search(form.text)
    assert token is not None
    page = await client.post(
        "/ui/login",
        data={"_csrf_token": token.group(1), "email": "mia@example.com", "password": PASSWORD},
    )
    assert page.status_code == 401
    assert "requires single sign-on" in page.text
    assert "Sign in with Corp" in page.text  # the way in, on the refusal
    await login(client, "ned@example.com")  # not a member: unaffected
    await login(client, "root@example.com")  # platform admins keep the password

    off = await client.put(
        "/api/v1/orgs/big/sso-requirement", headers=admin, json={"required": False}
    )
    assert off.json()["require_sso"] is False
    await login(client, "mia@example.com")


async def test_a_session_without_the_provider_no_longer_enters_an_org_requiring_sso(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    await make_org(client, admin, "sealed", plan="enterprise")
    for email in ("oli@example.com", "pam@example.com"):
        await add_user(client, email)
        await add_member(client, admin, "sealed", email, "member")
    assert (await _create(client, admin)).status_code == 201
    # Sessions and a personal token opened with a password before the org requires SSO.
    oli = (await login(client, "oli@example.com"))["Authorization"].removeprefix("Bearer ")
    root = admin["Authorization"].removeprefix("Bearer ")
    assert (await exchange(client, oli, audience="org:sealed")).status_code == 200
    on = {"required": True}
    answer = await client.put("/api/v1/orgs/sealed/sso-requirement", headers=admin, json=on)
    assert answer.status_code == 200, answer.text

    stale = await exchange(client, oli, audience="org:sealed")
    assert stale.status_code == 400, stale.text
    assert (stale.json()["error"], stale.json()["orgplane_code"]) == (
        "invalid_target",
        "sso_required",
    )
    # A sign-in through the provider enters; a platform admin keeps the password.
    async with direct_db(client) as db:
        pam = (await db.exec(select(User).where(User.email == "pam@example.com"))).one()
        federated = await login_tokens(runtime_of(client), db, pam, amr=("fed",))
    entered = await exchange(client, federated.access_token, audience="org:sealed")
    assert entered.status_code == 200, entered.text
    assert (await exchange(client, root, audience="org:sealed")).status_code == 200


async def test_deleting_a_provider_keeps_its_memberships_as_ordinary_ones(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    org = await make_org(client, admin, "eng")
    pid = (await _create(client, admin)).json()["id"]
    rule = {"claim": "groups", "value": "eng", "org": "eng"}
    assert (await client.post(f"{BASE}/{pid}/rules", headers=admin, json=rule)).status_code == 201
    user_id = await add_user(client, "liz@example.com")
    async with direct_db(client) as db:
        db.add(Membership(user_id=user_id, org_id=org["id"], role="member", source=f"idp:{pid}"))
        await db.commit()
    assert (await client.delete(f"{BASE}/{pid}", headers=admin)).status_code == 204
    async with direct_db(client) as db:
        [membership] = (
            await db.exec(select(Membership).where(col(Membership.user_id) == user_id))
        ).all()
        assert membership.source == ""
        assert (await db.exec(select(ClaimRule))).all() == []
    assert_problem(await client.get(f"{BASE}/{pid}", headers=admin), 404)


async def test_an_unreachable_unknown_or_disabled_provider_shows_the_login_page(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    # Nobody listens there; a path of its own, as discovery documents are cached per URL.
    down = f"http://127.0.0.1:{free_port()}/{uuid.uuid4().hex}/.well-known/openid-configuration"
    pid = (await _create(client, admin, discovery_url=down)).json()["id"]
    unreachable = await client.get("/ui/auth/sso/corp/start", follow_redirects=False)
    assert unreachable.status_code == 401
    assert "could not be reached" in unreachable.text
    assert "orgplane_sso" not in unreachable.cookies or not unreachable.cookies["orgplane_sso"]
    unknown = await client.get("/ui/auth/sso/nope/start", follow_redirects=False)
    assert unknown.status_code == 404
    assert "no such sign-in provider" in unknown.text
    off = await client.patch(f"{BASE}/{pid}", headers=admin, json={"enabled": False})
    assert off.json()["enabled"] is False
    assert (await client.get("/ui/auth/sso/corp/start")).status_code == 404
    assert "Sign in with Corp" not in (await client.get("/ui/login")).text
    async with direct_db(client) as db:
        events = await db.exec(select(AuditEvent))
        sso = [e for e in events if e.action == "auth.login" and e.detail.get("method") == "sso"]
    assert sso == []  # nothing was signed in or refused at the provider
