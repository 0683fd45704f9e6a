"""The built-in clients of the OpenID provider: an org instance (``oi-<org id>``, its redirect
URIs computed from the org, authenticated by its instance credential, answered an org token of
its own org only) and the CLI (``orgplane-cli``, public, any loopback port, answered a
control-plane session). On SQLite and PostgreSQL (the ``client`` fixture)."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from litestar.testing import AsyncTestClient
from sqlmodel import select

from control_plane.db.models import AuditEvent, Domain, Instance, Membership, Org
from control_plane.instances.heartbeat import issue_instance_credential
from control_plane.routing.org_urls import org_origin
from tests.support.api import PASSWORD, add_user, direct_db, login, runtime_of
from tests.support.mfa import code as totp_code
from tests.support.mfa import enable_mfa
from tests.ui.forms import submit

Client = AsyncTestClient[Any]


async def make_org(client: Client, slug: str, member: str | None, **fields: Any) -> tuple[str, str]:
    """An org with an instance and its credential, ``member`` its owner: (org id, credential)."""
    async with direct_db(client) as db:
        org = Org(slug=slug, name=slug.title(), **fields)
        db.add(org)
        await db.flush()
        db.add(Instance(org_id=org.id, provisioner="local"))
        if member:
            db.add(Membership(org_id=org.id, user_id=member, role="owner"))
        await db.flush()
        credential = await issue_instance_credential(db, org_id=org.id)
        await db.commit()
        return org.id, credential


def callback_of(client: Client, slug: str) -> str:
    return org_origin(runtime_of(client).settings, slug) + "/auth/callback"


def authorize(client_id: str, redirect_uri: str, challenge: str, **extra: str) -> str:
    params = {
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "response_type": "code",
        "scope": "openid profile email",
        "state": "st-1",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    return "/oauth/authorize?" + urlencode(params)


async def code_for(client: Client, url: str, redirect_uri: str) -> str:
    answer = await client.get(url, follow_redirects=False)
    for _ in range(4):
        location = answer.headers.get("location", "")
        if location.startswith(redirect_uri):
            break
        assert answer.status_code in (302, 303), answer.text
        answer = await client.get(location, follow_redirects=False)
    query = parse_qs(urlsplit(answer.headers["location"]).query)
    assert query["state"] == ["st-1"], query
    return query["code"][0]


async def redeem(
    client: Client, client_id: str, secret: str | None, code: str, uri: str, verifier: str
) -> Any:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": uri,
        "code_verifier": verifier,
    }
    if secret is None:
        return await client.post("/oauth/token", data={**data, "client_id": client_id})
    return await client.post("/oauth/token", data=data, auth=(client_id, secret))


def payload(token: str) -> dict[str, Any]:
    body = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return decoded


async def test_an_instance_gets_an_org_token_of_its_own_org_for_a_member(
    client: Client, signed_in: str, pkce: tuple[str, str]
) -> None:
    org_id, credential = await make_org(client, "acme", signed_in)
    other_id, other_credential = await make_org(client, "globex", signed_in)
    verifier, challenge = pkce
    uri = callback_of(client, "acme")
    client_id = f"oi-{org_id}"
    code = await code_for(client, authorize(client_id, uri, challenge), uri)  # no consent page

    # Another org's credential is not this instance's.
    refused = await redeem(client, client_id, other_credential, code, uri, verifier)
    assert refused.status_code == 401, refused.text
    assert refused.json()["error"] == "invalid_client"

    code = await code_for(client, authorize(client_id, uri, challenge), uri)
    answer = await redeem(client, client_id, credential, code, uri, verifier)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert "refresh_token" not in body
    claims = payload(body["access_token"])
    assert claims["aud"] == f"urn:orgplane:org:{org_id}"
    assert claims["org_id"] == org_id
    assert claims["org_role"] == "owner"
    assert claims["sub"] == signed_in
    identity = payload(body["id_token"])
    assert identity["aud"] == client_id
    assert identity["sub"] == signed_in
    assert identity["email"] == "ann@example.com"
    # Signed by the control plane's JWKS keys (the instance's verifier checks the org token).
    header = jwt.get_unverified_header(body["access_token"])
    assert header["typ"] == "at+jwt"

    # Replayed: refused, and audited.
    again = await redeem(client, client_id, credential, code, uri, verifier)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    async with direct_db(client) as db:
        replays = (
            await db.exec(select(AuditEvent).where(AuditEvent.action == "oauth.code_replay"))
        ).all()
    assert [r.target_id for r in replays] == [client_id]
    assert other_id != org_id


async def test_a_non_member_gets_no_org_token(
    client: Client, signed_in: str, pkce: tuple[str, str]
) -> None:
    org_id, credential = await make_org(client, "initech", None)
    verifier, challenge = pkce
    uri = callback_of(client, "initech")
    code = await code_for(client, authorize(f"oi-{org_id}", uri, challenge), uri)
    answer = await redeem(client, f"oi-{org_id}", credential, code, uri, verifier)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "invalid_target"
    assert "access_token" not in answer.json()
    # The code stays spent.
    again = await redeem(client, f"oi-{org_id}", credential, code, uri, verifier)
    assert again.json()["error"] == "invalid_grant"


async def test_a_suspended_org_gets_no_org_token(
    client: Client, signed_in: str, pkce: tuple[str, str]
) -> None:
    org_id, credential = await make_org(client, "hooli", signed_in, suspended=True)
    verifier, challenge = pkce
    uri = callback_of(client, "hooli")
    code = await code_for(client, authorize(f"oi-{org_id}", uri, challenge), uri)
    answer = await redeem(client, f"oi-{org_id}", credential, code, uri, verifier)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "invalid_target"
    assert "suspended" in answer.json()["error_description"]


async def test_redirect_uris_are_the_orgs_hosts_only(
    client: Client, signed_in: str, pkce: tuple[str, str]
) -> None:
    org_id, _ = await make_org(client, "umbrella", signed_in)
    _, challenge = pkce
    async with direct_db(client) as db:
        db.add(Domain(org_id=org_id, hostname="wiki.umbrella.test", verified=True))
        db.add(Domain(org_id=org_id, hostname="pending.umbrella.test", verified=False))
        await db.commit()
    client_id = f"oi-{org_id}"
    for uri in (
        callback_of(client, "other"),
        callback_of(client, "umbrella") + "x",
        "https://pending.umbrella.test/auth/callback",
        "https://evil.test/auth/callback",
    ):
        shown = await client.get(authorize(client_id, uri, challenge), follow_redirects=True)
        assert shown.status_code == 400, (uri, shown.text)
        assert "return address" in shown.text
    uri = "https://wiki.umbrella.test/auth/callback"
    assert (await code_for(client, authorize(client_id, uri, challenge), uri)).startswith("occ_")
    unknown = await client.get(
        authorize("oi-" + "0" * 32, callback_of(client, "umbrella"), challenge),
        follow_redirects=True,
    )
    assert unknown.status_code == 400
    assert "not registered" in unknown.text


async def test_the_cli_client_takes_any_loopback_port_and_gets_a_session(
    client: Client, signed_in: str, pkce: tuple[str, str]
) -> None:
    verifier, challenge = pkce
    for uri in ("http://localhost:5000/callback", "https://127.0.0.1:5000/", "http://10.0.0.1:1/"):
        shown = await client.get(authorize("orgplane-cli", uri, challenge), follow_redirects=True)
        assert shown.status_code == 400, (uri, shown.text)
    uri = "http://127.0.0.1:47755/callback"
    code = await code_for(client, authorize("orgplane-cli", uri, challenge), uri)
    wrong_port = await redeem(
        client, "orgplane-cli", None, code, "http://127.0.0.1:47756/callback", verifier
    )
    assert wrong_port.json()["error"] == "invalid_grant"
    code = await code_for(client, authorize("orgplane-cli", uri, challenge), uri)
    answer = await redeem(client, "orgplane-cli", None, code, uri, verifier)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.json()["email"] == "ann@example.com"
    refreshed = await client.post(
        "/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": body["refresh_token"],
            "client_id": "orgplane",
        },
    )
    assert refreshed.status_code == 200, refreshed.text


async def test_an_org_requiring_mfa_gets_no_org_token_for_a_password_sign_in(
    client: Client, signed_in: str, pkce: tuple[str, str]
) -> None:
    org_id, credential = await make_org(client, "mfa-org", signed_in, require_mfa=True)
    verifier, challenge = pkce
    uri = callback_of(client, "mfa-org")
    code = await code_for(client, authorize(f"oi-{org_id}", uri, challenge), uri)
    answer = await redeem(client, f"oi-{org_id}", credential, code, uri, verifier)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "invalid_target"
    assert "two-factor" in answer.json()["error_description"]
    assert "access_token" not in answer.json()


async def test_staff_open_goes_through_the_instance_sign_in_with_its_reason(
    client: Client, pkce: tuple[str, str]
) -> None:
    """A platform admin's "Open" on an org they are not a member of: the UI checks the reason
    (and the staff MFA rule) without minting a token and sends the browser to the instance's
    sign-in, whose token grant spends the reason once; one ``staff.access`` event."""
    root = await add_user(client, "root@example.com", admin=True)
    org_id, credential = await make_org(client, "umbrella", None)
    # Staff support access needs a second factor: sign in to the UI with a one-time code.
    enrolled = await enable_mfa(client, await login(client, "root@example.com"))
    await submit(
        client, "/ui/login", "/ui/login", email="root@example.com", password=PASSWORD, next="/ui/"
    )
    done = await submit(client, "/ui/login", "/ui/login/otp", otp=totp_code(enrolled.secret))
    assert done.status_code == 303, done.text
    verifier, challenge = pkce
    uri = callback_of(client, "umbrella")
    client_id = f"oi-{org_id}"

    # Without a reason: refused in the UI, and nothing kept for the instance.
    refused = await submit(client, "/ui/orgs/umbrella", "/ui/orgs/umbrella/open")
    assert refused.status_code == 403, refused.text
    assert "reason" in refused.text
    code = await code_for(client, authorize(client_id, uri, challenge), uri)
    nothing = await redeem(client, client_id, credential, code, uri, verifier)
    assert nothing.status_code == 400, nothing.text
    assert nothing.json()["error"] in ("invalid_request", "invalid_target")

    reason = "Ticket 4711: the customer asked us to look at a failed import"
    opened = await submit(client, "/ui/orgs/umbrella", "/ui/orgs/umbrella/open", reason=reason)
    assert opened.status_code == 303, opened.text
    target = urlsplit(opened.headers["location"])
    assert (target.path, target.query, target.fragment) == ("/auth/login", "", "")
    assert "access_token" not in opened.headers["location"]
    async with direct_db(client) as db:
        staff_events = (
            await db.exec(select(AuditEvent).where(AuditEvent.action == "staff.access"))
        ).all()
    assert staff_events == []  # the UI's check mints and records nothing

    code = await code_for(client, authorize(client_id, uri, challenge), uri)
    answer = await redeem(client, client_id, credential, code, uri, verifier)
    assert answer.status_code == 200, answer.text
    claims = payload(answer.json()["access_token"])
    assert (claims["org_id"], claims["org_role"], claims["act"]["sub"]) == (org_id, "admin", root)
    async with direct_db(client) as db:
        staff_events = (
            await db.exec(select(AuditEvent).where(AuditEvent.action == "staff.access"))
        ).all()
    assert len(staff_events) == 1
    assert reason in json.dumps(staff_events[0].detail)

    # The reason was spent: the next sign-in without a new "Open" gets no staff token.
    code = await code_for(client, authorize(client_id, uri, challenge), uri)
    spent = await redeem(client, client_id, credential, code, uri, verifier)
    assert spent.status_code == 400, spent.text
