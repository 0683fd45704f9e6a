"""RFC 8693 org switching: who gets an org token, what it says, and who is refused."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import jwt
import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import event
from sqlmodel import delete, select

from control_plane.db.models import Domain, Membership, Org, User, utcnow
from tests.support.api import add_user, direct_db, runtime_of
from tests.support.tokens import exchange, login_body, make_org

ISSUER = "http://127.0.0.1:8080"
NO_ACCESS = "No such org, or you have no access to it."


async def _jwks_key(client: AsyncTestClient[Any], token: str) -> jwt.PyJWK:
    kid = jwt.get_unverified_header(token)["kid"]
    keys = (await client.get("/.well-known/jwks.json")).json()["keys"]
    return jwt.PyJWK(next(k for k in keys if k["kid"] == kid))


async def _setup(client: AsyncTestClient[Any], role: str = "member") -> tuple[str, str, str]:
    """A user who is ``role`` of org ``acme``: (access token, user id, org id)."""
    user_id = await add_user(client, f"{role}@example.com")
    org_id = await make_org(
        client,
        "acme",
        members={user_id: role},
        plan="free",
        features={"beta_search": True, "sso": False},
    )
    body = await login_body(client, f"{role}@example.com")
    return body["access_token"], user_id, org_id


def _error(answer: Any, error: str) -> str:
    assert answer.status_code == 400, answer.text
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert body["error"] == error, body
    return str(body["error_description"])


async def test_member_gets_an_org_token_with_the_contract_claims(
    client: AsyncTestClient[Any],
) -> None:
    access, user_id, org_id = await _setup(client, "admin")
    answer = await exchange(client, access, audience="org:acme")
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert body["issued_token_type"] == "urn:ietf:params:oauth:token-type:access_token"
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 300
    assert "refresh_token" not in body
    token = body["access_token"]
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "ES256"
    claims = jwt.decode(
        token,
        await _jwks_key(client, token),
        algorithms=["ES256"],
        audience=f"urn:orgplane:org:{org_id}",
        issuer=ISSUER,
    )
    assert claims["sub"] == user_id
    assert claims["org_id"] == org_id
    assert claims["org_slug"] == "acme"
    assert claims["org_role"] == "admin"
    assert claims["plan"] == "free"
    assert "beta_search" in claims["features"]
    assert "sso" not in claims["features"]
    assert claims["scope"] == body["scope"] == "org:read org:write org:admin"
    assert claims["client_id"] == "orgplane"
    assert claims["exp"] - claims["iat"] == 300
    assert claims["nbf"] == claims["iat"]
    assert len(claims["jti"]) == 32
    assert "act" not in claims
    # An org token is not a control-plane access token.
    me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 401


async def test_org_can_be_named_by_id_audience_url_and_verified_domain(
    client: AsyncTestClient[Any],
) -> None:
    access, _, org_id = await _setup(client)
    async with direct_db(client) as db:
        db.add(Domain(hostname="chat.acme.test", org_id=org_id, verified=True))
        db.add(Domain(hostname="unverified.acme.test", org_id=org_id, verified=False))
        await db.commit()
    for params in (
        {"audience": f"org:{org_id}"},
        {"audience": f"urn:orgplane:org:{org_id}"},
        {"resource": "https://acme.localhost/workspace?x=1"},
        {"resource": "http://ACME.localhost.:8443/"},
        {"resource": "https://chat.acme.test/"},
    ):
        answer = await exchange(client, access, **params)
        assert answer.status_code == 200, (params, answer.text)
        assert (
            jwt.decode(answer.json()["access_token"], options={"verify_signature": False})["org_id"]
            == org_id
        )
    for params in (
        {"resource": "https://unverified.acme.test/"},
        {"resource": "https://x.acme.localhost/"},
        {"resource": "https://evil.example/"},
        {"audience": "acme"},
        {"audience": "org:"},
        {"audience": "urn:orgplane:org:acme"},
    ):
        assert _error(await exchange(client, access, **params), "invalid_target") == NO_ACCESS
    _error(await exchange(client, access, resource="/relative"), "invalid_target")
    _error(await exchange(client, access, resource="ftp://acme.localhost/"), "invalid_target")
    _error(await exchange(client, access, resource="https://[::1"), "invalid_target")
    two = await client.post(
        "/oauth/token",
        content=(
            "grant_type=urn:ietf:params:oauth:grant-type:token-exchange&subject_token="
            + access
            + "&subject_token_type=urn:ietf:params:oauth:token-type:access_token"
            "&audience=org:acme&audience=org:other"
        ).encode(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    _error(two, "invalid_target")
    _error(await exchange(client, access), "invalid_request")


async def test_outsiders_get_the_same_answer_as_for_an_unknown_org(
    client: AsyncTestClient[Any],
) -> None:
    await _setup(client)
    await add_user(client, "outsider@example.com")
    outsider = (await login_body(client, "outsider@example.com"))["access_token"]
    not_mine = await exchange(client, outsider, audience="org:acme")
    unknown = await exchange(client, outsider, audience="org:nope")
    assert not_mine.json() == unknown.json()
    assert _error(not_mine, "invalid_target") == NO_ACCESS


async def test_membership_and_org_state_are_read_at_exchange_time(
    client: AsyncTestClient[Any],
) -> None:
    access, user_id, org_id = await _setup(client)
    assert (await exchange(client, access, audience="org:acme")).status_code == 200

    async with direct_db(client) as db:
        org = await db.get(Org, org_id)
        assert org is not None
        org.suspended = True
        db.add(org)
        await db.commit()
    assert "suspended" in _error(
        await exchange(client, access, audience="org:acme"), "invalid_target"
    )
    async with direct_db(client) as db:
        org = await db.get(Org, org_id)
        assert org is not None
        org.suspended, org.delete_after = False, utcnow() + timedelta(minutes=5)
        db.add(org)
        await db.commit()
    assert "deletion" in _error(
        await exchange(client, access, audience="org:acme"), "invalid_target"
    )
    async with direct_db(client) as db:
        org = await db.get(Org, org_id)
        assert org is not None
        org.delete_after = None
        db.add(org)
        await db.commit()
    assert (await exchange(client, access, audience="org:acme")).status_code == 200

    async with direct_db(client) as db:
        await db.exec(delete(Membership).where(Membership.user_id == user_id))
        await db.commit()
    assert (
        _error(await exchange(client, access, audience="org:acme"), "invalid_target") == NO_ACCESS
    )

    async with direct_db(client) as db:
        org = await db.get(Org, org_id)
        assert org is not None
        org.desired_state, org.deleted_at = "deleted", utcnow()
        db.add(org)
        await db.commit()
    assert (
        _error(await exchange(client, access, audience="org:acme"), "invalid_target") == NO_ACCESS
    )


async def test_disabled_user_and_bad_token_types_are_refused(
    client: AsyncTestClient[Any],
) -> None:
    access, user_id, _ = await _setup(client)
    _error(
        await exchange(
            client,
            access,
            audience="org:acme",
            subject_token_type="urn:ietf:params:oauth:token-type:id_token",
        ),
        "invalid_request",
    )
    _error(
        await exchange(
            client,
            access,
            audience="org:acme",
            requested_token_type="urn:ietf:params:oauth:token-type:saml2",
        ),
        "invalid_request",
    )
    as_jwt = await exchange(
        client,
        access,
        audience="org:acme",
        requested_token_type="urn:ietf:params:oauth:token-type:jwt",
    )
    assert as_jwt.json()["issued_token_type"] == "urn:ietf:params:oauth:token-type:jwt"
    async with direct_db(client) as db:
        user = await db.get(User, user_id)
        assert user is not None
        user.disabled = True
        db.add(user)
        await db.commit()
    _error(await exchange(client, access, audience="org:acme"), "invalid_request")


@pytest.mark.parametrize(
    ("role", "requested", "granted"),
    [
        ("member", None, "org:read org:write"),
        ("member", "org:read", "org:read"),
        ("owner", "org:owner org:read", "org:read org:owner"),
        ("member", "org:admin", None),
        ("admin", "org:read openid", None),
    ],
)
async def test_scope_follows_the_role_and_can_only_narrow(
    client: AsyncTestClient[Any],
    role: str,
    requested: str | None,
    granted: str | None,
) -> None:
    access, _, _ = await _setup(client, role)
    params = {"audience": "org:acme", **({"scope": requested} if requested else {})}
    answer = await exchange(client, access, **params)
    if granted is None:
        _error(answer, "invalid_scope")
        return
    assert answer.status_code == 200, answer.text
    claims = jwt.decode(answer.json()["access_token"], options={"verify_signature": False})
    assert claims["scope"] == answer.json()["scope"] == granted
    assert claims["org_role"] == role


async def test_admins_of_a_parent_org_enter_its_children_as_admin(
    client: AsyncTestClient[Any],
) -> None:
    boss = await add_user(client, "boss@example.com")
    parent = await make_org(
        client, "holding", members={boss: "owner"}, features={"beta_search": True}
    )
    await make_org(client, "subsidiary", parent_id=parent, features={"sso": True})
    access = (await login_body(client, "boss@example.com"))["access_token"]
    answer = await exchange(client, access, audience="org:subsidiary")
    assert answer.status_code == 200, answer.text
    claims = jwt.decode(answer.json()["access_token"], options={"verify_signature": False})
    assert claims["org_role"] == "admin"
    assert {"beta_search", "sso"} <= set(claims["features"])
    async with direct_db(client) as db:
        rows = (await db.exec(select(Membership).where(Membership.user_id == boss))).all()
    assert len(rows) == 1, "inheritance must not write memberships"


@pytest.mark.parametrize("db_backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_an_org_switch_is_one_round_trip_to_postgresql(
    client: AsyncTestClient[Any],
) -> None:
    """No pre-ping, no BEGIN and ROLLBACK, no query of its own for the feature catalogue: once
    the connections have prepared its statement, an exchange sends PostgreSQL one message
    batch (bind and execute the load), and the catalogue arrives in that one answer."""
    access, _, _ = await _setup(client)
    runtime = runtime_of(client)
    runtime.keyring.cache_seconds = 3600  # the key ring's reads are not what is counted
    writes: list[bytes] = []
    counting = False

    def count(dbapi_conn: Any, *_: Any) -> None:
        transport = dbapi_conn.driver_connection._transport
        if "write" not in vars(transport):  # asyncpg's protocol writes through this
            send = transport.write

            def write(data: bytes) -> None:
                if counting:
                    writes.append(bytes(data))
                send(data)

            transport.write = write

    # Wrapped at a checkout, a connection's next checkout (and any ping in it) is counted.
    engine = runtime.engine.sync_engine
    event.listen(engine, "checkout", count)
    try:
        for _ in range(3):  # each pooled connection prepares the statement once
            assert (await exchange(client, access, audience="org:acme")).status_code == 200
        counting = True
        answer = await exchange(client, access, audience="org:acme")
        counting = False
    finally:
        event.remove(engine, "checkout", count)
    assert answer.status_code == 200, answer.text
    assert len(writes) == 1, writes
    assert not any(word in writes[0] for word in (b"BEGIN", b"ROLLBACK"))
