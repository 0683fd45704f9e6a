"""Who gets in: the Host check (421), org tokens (401), roles, and the plan's limits (403/429)."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from structlog.testing import capture_logs

from org_instance.config import InstanceConfig, normalize_host
from tests.instance.conftest import runtime_of
from tests.instance.helpers import FakeControlPlane, Signer, bearer
from tests.instance.test_verifier import bad_tokens
from tests.support.api import assert_problem

ENDPOINTS = [
    ("GET", "/api/v1/me"),
    ("GET", "/api/v1/sessions"),
    ("POST", "/api/v1/sessions"),
    ("GET", "/api/v1/settings"),
    ("PUT", "/api/v1/settings/theme"),
    ("GET", "/api/v1/runners"),
    ("POST", "/api/v1/runners"),
    ("GET", "/api/v1/files"),
    ("GET", "/api/v1/usage"),
]


async def test_requests_for_other_hosts_are_refused_with_421_and_logged(
    instance: AsyncTestClient[Any], signer: Signer, org_id: str
) -> None:
    who = bearer(signer.token(org_id))
    with capture_logs() as logs:
        for host in ("other-org.orgplane.test", "evil.example", "acme.orgplane.test.evil.example"):
            for path in ("/api/v1/me", "/no/such/path"):
                refused = await instance.get(path, headers={**who, "host": host})
                assert_problem(refused, 421, "misdirected_request")
    hosts = {e["host"] for e in logs if e["event"] == "misdirected request refused"}
    assert hosts == {"other-org.orgplane.test", "evil.example", "acme.orgplane.test.evil.example"}
    for host in (
        "ACME.orgplane.test",
        "acme.orgplane.test.",
        "acme.orgplane.test:8443",
        "127.0.0.1:8000",
        "localhost",
        "[::1]:8000",
    ):
        ok = await instance.get("/api/v1/me", headers={**who, "host": host})
        assert ok.status_code == 200, (host, ok.text)


async def test_probes_answer_on_any_host_without_a_token(instance: AsyncTestClient[Any]) -> None:
    for path in ("/healthz", "/readyz"):
        answer = await instance.get(path, headers={"host": "10.1.2.3:8000"})
        assert answer.status_code == 200, answer.text
    assert (await instance.get("/readyz")).json() == {
        "status": "ready",
        "db_ok": True,
        "redis_ok": True,
    }


def test_hosts_are_normalised_and_internal_names_allowed(tmp_path: Any) -> None:
    assert normalize_host("Acme.Example.COM.:443") == "acme.example.com"
    assert normalize_host("[::1]:8000") == "::1"
    config = InstanceConfig.from_env(
        {
            "ORGPLANE_ORG_ID": "org1",
            "ORGPLANE_INSTANCE_CREDENTIAL": "opi_org1.0123456789abcdef",
            "ORGPLANE_DATA_DIR": str(tmp_path),
            "ORGPLANE_CONTROL_PLANE_URL": "http://cp:8080",
            "ORGPLANE_HOSTNAMES": "Acme.example.com., docs.acme.io",
            "ORGPLANE_BIND_HOST": "10.0.0.7",
            "ORGPLANE_INTERNAL_HOSTS": "org-acme.orgplane.svc",
        }
    )
    assert {
        "acme.example.com",
        "docs.acme.io",
        "10.0.0.7",
        "org-acme.orgplane.svc",
        "127.0.0.1",
        "localhost",
    } <= config.allowed_hosts
    assert "example.com" not in config.allowed_hosts


async def test_every_endpoint_needs_a_token_for_this_org(
    instance: AsyncTestClient[Any], signer: Signer, org_id: str
) -> None:
    other_org = signer.token("c" * 32, aud="urn:orgplane:org:" + "c" * 32)
    for method, path in ENDPOINTS:
        for headers in ({}, bearer(other_org), {"Authorization": "Basic dXNlcjpwdw=="}):
            refused = await instance.request(method, path, headers=headers, json={})
            body = assert_problem(refused, 401, "invalid_token")
            assert refused.headers["www-authenticate"].startswith("Bearer")
            assert "reason" not in body
    # A token in the query string is for WebSockets only.
    query = await instance.get("/api/v1/me", params={"access_token": signer.token(org_id)})
    assert_problem(query, 401)


async def test_forged_tokens_get_401_never_5xx_at_every_endpoint(
    instance: AsyncTestClient[Any], signer: Signer, org_id: str, cp: FakeControlPlane
) -> None:
    await instance.get("/api/v1/me", headers=bearer(signer.token(org_id)))
    fetched = cp.jwks_requests
    tokens = bad_tokens(signer)
    tokens["other org"] = signer.token("c" * 32, aud="urn:orgplane:org:" + "c" * 32)
    for method, path in ENDPOINTS:
        for name, token in tokens.items():
            if name == "1 MB":  # far above any header limit: checked once below
                continue
            header = {"Authorization": b"Bearer " + token.encode()}  # bytes: non-ASCII too
            answer = await instance.request(method, path, headers=header, json={})
            assert_problem(answer, 401, "invalid_token")
    big = await instance.get("/api/v1/me", headers=bearer(tokens["1 MB"]))
    assert 400 <= big.status_code < 500
    assert cp.jwks_requests == fetched


async def test_requests_per_minute_is_enforced_per_user(make_instance: Any, signer: Signer) -> None:
    async with make_instance(limits={"requests_per_minute": 3}) as instance:
        org_id = runtime_of(instance).config.org_id
        alice = bearer(signer.token(org_id, sub="alice"))
        for _ in range(3):
            assert (await instance.get("/api/v1/me", headers=alice)).status_code == 200
        limited = await instance.get("/api/v1/me", headers=alice)
        body = assert_problem(limited, 429, "rate_limited")
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert body["limit"] == 3
        bob = bearer(signer.token(org_id, sub="bob"))
        assert (await instance.get("/api/v1/me", headers=bob)).status_code == 200


async def test_max_sessions_is_a_403_quota(make_instance: Any, signer: Signer) -> None:
    async with make_instance(limits={"max_sessions": 2, "max_runners": 1}) as instance:
        org_id = runtime_of(instance).config.org_id
        admin = bearer(signer.token(org_id, org_role="admin"))
        for _ in range(2):
            assert (
                await instance.post("/api/v1/sessions", headers=admin, json={})
            ).status_code == 201
        over = await instance.post("/api/v1/sessions", headers=admin, json={})
        body = assert_problem(over, 403, "quota_exceeded")
        assert body["limit"] == "max_sessions"
        assert body["allowed"] == 2
        assert (
            await instance.post("/api/v1/runners", headers=admin, json={"name": "a"})
        ).status_code == 201
        assert_problem(
            await instance.post("/api/v1/runners", headers=admin, json={"name": "b"}),
            403,
            "quota_exceeded",
        )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "ORGPLANE_ORG_ID"),
        ({"ORGPLANE_ORG_ID": "a*b"}, "ORGPLANE_ORG_ID"),
        ({"ORGPLANE_INSTANCE_CREDENTIAL": "short"}, "ORGPLANE_INSTANCE_CREDENTIAL"),
        ({"ORGPLANE_LIMITS": "{"}, "ORGPLANE_LIMITS"),
        ({"ORGPLANE_LIMITS": '{"max_sessions": -1}'}, "max_sessions"),
        ({"ORGPLANE_LIMITS": '{"max_widgets": 1}'}, "max_widgets"),
        ({"ORGPLANE_REDIS_NAMESPACE": "org:someone-else"}, "ORGPLANE_REDIS_NAMESPACE"),
        ({"ORGPLANE_HEARTBEAT_INTERVAL": "nan"}, "ORGPLANE_HEARTBEAT_INTERVAL"),
        ({"ORGPLANE_CONTROL_PLANE_URL": ""}, "ORGPLANE_CONTROL_PLANE_URL"),
    ],
)
def test_a_bad_environment_is_refused_with_every_problem_named(
    tmp_path: Any, env: dict[str, str], message: str
) -> None:
    from org_instance.config import ConfigError

    base = {
        "ORGPLANE_ORG_ID": "org1",
        "ORGPLANE_INSTANCE_CREDENTIAL": "opi_org1.0123456789abc",
        "ORGPLANE_DATA_DIR": str(tmp_path),
        "ORGPLANE_CONTROL_PLANE_URL": "http://cp",
    }
    merged = {k: v for k, v in {**base, **env}.items() if k in env or k not in env}
    if env == {}:
        merged.pop("ORGPLANE_ORG_ID")
    with pytest.raises(ConfigError, match=message):
        InstanceConfig.from_env(merged)
