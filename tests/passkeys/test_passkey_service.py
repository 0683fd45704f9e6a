"""Passkeys through the API and the UI's second sign-in step, on SQLite and PostgreSQL, with a
software authenticator (``tests/support/passkeys.py``, independent of the server's library).

Registration, listing, renaming, removal; sign-in with a passkey after the password; the
refusals (another origin or RP ID, a replayed challenge, a cloned authenticator's counter,
someone else's credential, a challenge of another session); and a passkey sign-in counting as
MFA for orgs that require it and for staff support access.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import jwt
from litestar.testing import AsyncTestClient
from sqlmodel import col, select

from control_plane.auth import SESSION_COOKIE
from control_plane.db.models import AuditEvent
from control_plane.db.passkey_models import Passkey, PasskeyChallenge
from control_plane.identity.passkeys import MAX_PASSKEYS
from tests.support.api import PASSWORD, add_user, assert_problem, direct_db, login
from tests.support.mfa import Enrolled, code, enable_mfa, login_answer, steady_step
from tests.support.passkeys import SoftAuthenticator, page_options
from tests.support.tokens import exchange, make_org
from tests.ui.forms import submit

Client = AsyncTestClient[Any]
ME = "/api/v1/me/passkeys"
ORIGIN = "http://127.0.0.1:8080"  # the test client's, and the default public URL
RP_ID = "127.0.0.1"
REASON = "ticket 7: the instance does not start"


async def _mfa_user(
    client: Client, email: str, *, admin: bool = False
) -> tuple[str, dict[str, str], Enrolled]:
    """A user with TOTP on: their id, the headers of their session and the enrolment."""
    user_id = await add_user(client, email, admin=admin)
    headers = await login(client, email)
    return user_id, headers, await enable_mfa(client, headers)


async def _add(
    client: Client, headers: dict[str, str], auth: SoftAuthenticator, name: str = "Laptop"
) -> dict[str, Any]:
    started = await client.post(f"{ME}/registration", headers=headers, json={"password": PASSWORD})
    assert started.status_code == 201, started.text
    assert started.headers["cache-control"] == "no-store"
    credential = auth.create(started.json()["options"])
    added = await client.post(ME, headers=headers, json={"name": name, "credential": credential})
    assert added.status_code == 201, added.text
    body: dict[str, Any] = added.json()
    return body


async def _password_step(client: Client, email: str) -> dict[str, Any]:
    """Sign in with the password in a fresh browser: the passkey options of the code page."""
    client.cookies.clear()
    asked = await submit(
        client, "/ui/login", "/ui/login", email=email, password=PASSWORD, next="/ui/orgs"
    )
    assert asked.status_code == 200, asked.text
    assert "Use a passkey" in asked.text
    return page_options(asked.text)


async def _passkey_step(client: Client, credential: Any) -> Any:
    value = credential if isinstance(credential, str) else json.dumps(credential)
    return await submit(client, "/ui/login", "/ui/login/passkey", credential=value)


def _amr(answer: Any) -> list[str]:
    assert answer.status_code == 303, answer.text
    claims = jwt.decode(answer.cookies[SESSION_COOKIE], options={"verify_signature": False})
    return list(claims["amr"])


async def _failures(client: Client, user_id: str) -> list[str]:
    async with direct_db(client) as db:
        rows = await db.exec(
            select(AuditEvent).where(
                col(AuditEvent.actor_id) == user_id,
                col(AuditEvent.action) == "auth.login",
                col(AuditEvent.outcome) == "failure",
            )
        )
        return [str(row.detail.get("passkey")) for row in rows.all()]


async def test_add_list_rename_and_sign_in_with_a_passkey(client: Client) -> None:
    _, headers, _ = await _mfa_user(client, "ann@example.com")
    laptop = SoftAuthenticator(RP_ID, ORIGIN)
    phone = SoftAuthenticator(RP_ID, ORIGIN, synced=True)
    added = await _add(client, headers, laptop)
    assert added["name"] == "Laptop"
    assert added["transports"] == ["internal"]
    await _add(client, headers, phone, name="Phone")
    listed = (await client.get(ME, headers=headers)).json()
    assert [p["name"] for p in listed] == ["Laptop", "Phone"]
    assert "public_key" not in listed[0]
    assert "credential_id" not in listed[0]
    await add_user(client, "zed@example.com")
    stranger = await login(client, "zed@example.com")
    theirs = await client.patch(f"{ME}/{added['id']}", headers=stranger, json={"name": "Mine"})
    assert_problem(theirs, 404, "passkey_not_found")
    assert (await client.get(ME, headers=stranger)).json() == []
    renamed = await client.patch(f"{ME}/{added['id']}", headers=headers, json={"name": "Work"})
    assert renamed.json()["name"] == "Work"
    assert_problem(
        await client.patch(f"{ME}/{added['id']}", headers=headers, json={"name": " "}), 400
    )

    # The code page of the password step offers the passkeys; a device-bound one is "hwk".
    options = await _password_step(client, "ann@example.com")
    assert options["rpId"] == RP_ID
    assert len(options["allowCredentials"]) == 2
    assert _amr(await _passkey_step(client, laptop.get(options))) == ["pwd", "hwk"]
    assert (await client.get("/ui/orgs")).status_code == 200
    # A synced passkey (backup eligible) can be copied: "swk".
    options = await _password_step(client, "ann@example.com")
    assert _amr(await _passkey_step(client, phone.get(options))) == ["pwd", "swk"]
    listed = (await client.get(ME, headers=headers)).json()
    assert all(p["last_used_at"] for p in listed)


async def test_assertions_that_do_not_prove_the_user_are_refused(client: Client) -> None:
    bo_id, bo_headers, _ = await _mfa_user(client, "bo@example.com")
    bo = SoftAuthenticator(RP_ID, ORIGIN)
    await _add(client, bo_headers, bo)
    _, cy_headers, _ = await _mfa_user(client, "cy@example.com")
    cy = SoftAuthenticator(RP_ID, ORIGIN)
    await _add(client, cy_headers, cy)

    options = await _password_step(client, "bo@example.com")
    refusals: list[Callable[[dict[str, Any]], Any]] = [
        lambda o: bo.get(o, origin="http://evil.example"),
        lambda o: bo.get(o, rp_id="evil.example"),
        cy.get,  # someone else's credential
        lambda o: "{not json",
    ]
    for wrong in refusals:
        refused = await _passkey_step(client, wrong(options))
        assert refused.status_code == 401, refused.text
        assert SESSION_COOKIE not in refused.cookies
        assert "passkey was not accepted" in refused.text
        options = page_options(refused.text)  # each refusal offers a new challenge
    done = await _passkey_step(client, bo.get(options))
    assert _amr(done) == ["pwd", "hwk"]

    # A challenge is spent once: a new assertion to the old challenge is refused.
    old_challenge = options["challenge"]
    options = await _password_step(client, "bo@example.com")
    replayed = await _passkey_step(client, bo.get(options, challenge=old_challenge))
    assert replayed.status_code == 401
    # A clone of the authenticator, its counter behind the one stored, is refused too.
    clone = await _passkey_step(client, bo.get(page_options(replayed.text), counter=1))
    assert clone.status_code == 401
    assert SESSION_COOKIE not in clone.cookies
    reasons = await _failures(client, bo_id)
    assert reasons == [
        "invalid",
        "invalid",
        "unknown_credential",
        "malformed",
        "challenge",
        "sign_count",
    ]


async def test_registration_is_checked_and_bound_to_its_session(client: Client) -> None:
    await add_user(client, "dee@example.com")
    plain = await login(client, "dee@example.com")
    auth = SoftAuthenticator(RP_ID, ORIGIN)
    body = {"password": PASSWORD}
    assert_problem(
        await client.post(f"{ME}/registration", headers=plain, json=body), 409, "mfa_not_enabled"
    )
    enrolled = await enable_mfa(client, plain)
    wrong = {"password": "not the password"}
    assert_problem(
        await client.post(f"{ME}/registration", headers=plain, json=wrong),
        401,
        "invalid_credentials",
    )

    started = await client.post(f"{ME}/registration", headers=plain, json=body)
    options = started.json()["options"]
    assert options["rp"]["id"] == RP_ID
    assert options["authenticatorSelection"]["userVerification"] == "preferred"
    elsewhere = {"name": "Key", "credential": auth.create(options, origin="http://evil.example")}
    assert_problem(await client.post(ME, headers=plain, json=elsewhere), 400, "invalid_passkey")
    # The challenge was spent by that refusal: the right answer to it is refused now.
    again = {"name": "Key", "credential": auth.create(options)}
    assert_problem(await client.post(ME, headers=plain, json=again), 400, "invalid_passkey")
    # A challenge of one session is not usable from another sign-in of the same user.
    started = await client.post(f"{ME}/registration", headers=plain, json=body)
    second = await login_answer(client, "dee@example.com", enrolled.recovery_codes[0])
    other = {"Authorization": f"Bearer {second.json()['access_token']}"}
    moved = {"name": "Key", "credential": auth.create(started.json()["options"])}
    assert_problem(await client.post(ME, headers=other, json=moved), 400, "invalid_passkey")
    assert_problem(await client.post(ME, headers=plain, json={"name": "Key"}), 400)
    assert (await client.get(ME, headers=plain)).json() == []

    for n in range(MAX_PASSKEYS):
        await _add(client, plain, SoftAuthenticator(RP_ID, ORIGIN), name=f"Key {n}")
    full = await client.post(f"{ME}/registration", headers=plain, json=body)
    assert_problem(full, 409, "too_many_passkeys")


async def test_removal_needs_the_second_factor_and_mfa_off_removes_passkeys(
    client: Client,
) -> None:
    _, headers, enrolled = await _mfa_user(client, "eve@example.com")
    first = await _add(client, headers, SoftAuthenticator(RP_ID, ORIGIN))
    await _add(client, headers, SoftAuthenticator(RP_ID, ORIGIN), name="Spare")
    bad = {"password": PASSWORD, "code": "000000"}
    answer = await client.request("DELETE", f"{ME}/{first['id']}", headers=headers, json=bad)
    assert_problem(answer, 401, "invalid_otp")
    assert len((await client.get(ME, headers=headers)).json()) == 2
    good = {"password": PASSWORD, "code": enrolled.recovery_codes[0]}
    removed = await client.request("DELETE", f"{ME}/{first['id']}", headers=headers, json=good)
    assert removed.status_code == 204, removed.text
    gone = await client.request("DELETE", f"{ME}/{first['id']}", headers=headers, json=good)
    assert_problem(gone, 404, "passkey_not_found")
    async with direct_db(client) as db:
        audit = (
            await db.exec(select(AuditEvent).where(AuditEvent.action == "passkey.removed"))
        ).one()
        assert (audit.target_id, audit.detail["name"]) == (first["id"], "Laptop")

    steady_step()
    off = {"password": PASSWORD, "code": code(enrolled.secret)}
    assert (
        await client.request("DELETE", "/api/v1/me/mfa/totp", headers=headers, json=off)
    ).status_code == 204
    async with direct_db(client) as db:
        assert (await db.exec(select(Passkey))).all() == []
        assert (await db.exec(select(PasskeyChallenge))).all() == []


async def test_an_admin_reset_removes_the_passkeys(client: Client, admin: dict[str, str]) -> None:
    user_id, headers, _ = await _mfa_user(client, "fay@example.com")
    added = await _add(client, headers, SoftAuthenticator(RP_ID, ORIGIN))
    reset = await client.request(
        "DELETE", f"/api/v1/users/{user_id}/mfa", headers=admin, json={"reason": "lost the key"}
    )
    assert reset.status_code == 204, reset.text
    async with direct_db(client) as db:
        assert await db.get(Passkey, added["id"]) is None


async def test_a_passkey_sign_in_is_mfa_for_orgs_and_support_access(client: Client) -> None:
    gus, member_headers, _ = await _mfa_user(client, "gus@example.com")
    member = SoftAuthenticator(RP_ID, ORIGIN)
    await _add(client, member_headers, member)
    _, staff_headers, _ = await _mfa_user(client, "ops@orgplane.test", admin=True)
    staff = SoftAuthenticator(RP_ID, ORIGIN)
    await _add(client, staff_headers, staff)
    await make_org(client, "acme", members={gus: "member"}, require_mfa=True)

    password_only = member_headers["Authorization"].removeprefix("Bearer ")
    refused = await exchange(client, password_only, audience="org:acme")
    assert refused.json()["orgplane_code"] == "mfa_required"
    options = await _password_step(client, "gus@example.com")
    signed_in = await _passkey_step(client, member.get(options))
    assert _amr(signed_in) == ["pwd", "hwk"]
    entered = await exchange(client, signed_in.cookies[SESSION_COOKIE], audience="org:acme")
    assert entered.status_code == 200, entered.text

    options = await _password_step(client, "ops@orgplane.test")
    staff_in = await _passkey_step(client, staff.get(options))
    support = await exchange(
        client, staff_in.cookies[SESSION_COOKIE], audience="org:acme", orgplane_reason=REASON
    )
    assert support.status_code == 200, support.text
    claims = jwt.decode(support.json()["access_token"], options={"verify_signature": False})
    assert claims["amr"] == ["pwd", "hwk"]
