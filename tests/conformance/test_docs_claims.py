"""Claims of docs/api.md, docs/org-instance.md and docs/tokens.md, checked against behaviour.

Each test quotes the claim it checks. Claims about live answers go to the real processes with
independent clients; claims that restate code (the Redis ACL rule line, the close codes) are
read from the docs and compared with what the code sends. Checked elsewhere in this suite:
close codes on the wire (``test_websocket_refusals``), problem+json on every error
(``test_raw_fuzz``, ``test_openapi``), RFC 6750 challenges (``test_standards``).

Seen false before: org-instance.md said the close codes reached clients (they got HTTP 403);
api.md said every error is problem+json (the token endpoint answers RFC 6749 JSON); api.md's
"RFC 3339 in UTC" did not hold for ``/orgs/{id}/instance`` on SQLite (naive times, see
tests/api/test_timestamps.py); tokens.md listed an OpenID configuration that failed OIDC
Discovery.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import httpx

from control_plane.redis_acl import _rules
from org_instance import auth, events
from tests.conformance.conftest import Platform
from tests.support.services import REPO

DOCS = REPO / "docs"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"


def doc(name: str) -> str:
    return (DOCS / name).read_text()


def test_redis_acl_rule_line_is_what_the_control_plane_sends() -> None:
    """org-instance.md: ``ACL SETUSER org-<id> reset on >password ~org:<id>:* ...``."""
    block = re.search(r"```\n(ACL SETUSER org-<id> .*?)```", doc("org-instance.md"), re.S)
    assert block is not None
    documented = block.group(1).split()[3:]  # after "ACL SETUSER org-<id>"
    sent = _rules("ID", "password")
    assert [t.replace("<id>", "ID") for t in documented] == sent


def test_documented_close_codes_are_the_codes_the_instance_uses() -> None:
    """org-instance.md: "4401 no valid token, 4404 no such session, 4429 rate limited, 1008
    foreign host" (the wire is checked in test_websocket_refusals)."""
    text = " ".join(doc("org-instance.md").split())
    for code, meaning in (
        (auth.WS_CLOSE_UNAUTHORIZED, "no valid token"),
        (events.WS_CLOSE_NOT_FOUND, "no such session"),
        (auth.WS_CLOSE_RATE_LIMITED, "rate limited"),
        (1008, "foreign host"),
    ):
        assert f"{code} {meaning}" in text


def test_timestamps_are_rfc3339_utc_with_z(platform: Platform) -> None:
    """api.md: "Timestamps are RFC 3339 in UTC (`2025-01-31T12:00:00.123456Z`)"."""
    assert "`2025-01-31T12:00:00.123456Z`" in doc("api.md")
    headers = {"Authorization": f"Bearer {platform.access_token}"}
    org = platform.instance.org["org_id"]
    answer = httpx.get(f"{platform.cp.url}/api/v1/orgs/{org}", headers=headers)
    assert answer.status_code == 200, answer.text
    for key in ("created_at", "updated_at"):
        value = answer.json()[key]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", value), value
        assert datetime.fromisoformat(value).utcoffset() == UTC.utcoffset(None)


def test_errors_are_problem_json_except_the_token_endpoint(platform: Platform) -> None:
    """api.md: every error answers problem+json; tokens.md: the token endpoint's errors are
    OAuth error JSON, status 400 (401 for ``invalid_client``), ``Cache-Control: no-store``."""
    claim = "Every error answers `Content-Type: application/problem+json` (except the OAuth token"
    assert claim in " ".join(doc("api.md").split())
    problem = httpx.get(
        platform.cp.url + "/api/v1/orgs/none-such", headers={"Authorization": "Bearer x"}
    )
    assert problem.headers["content-type"] == "application/problem+json"
    oauth = httpx.post(platform.cp.url + "/oauth/token", data={"grant_type": "password"})
    assert oauth.status_code == 400
    assert oauth.headers["content-type"].startswith("application/json")
    assert set(oauth.json()) <= {"error", "error_description"}
    assert oauth.headers["cache-control"] == "no-store"


def test_token_endpoint_parameters_and_clients(platform: Platform) -> None:
    """tokens.md: "Parameters other than `audience` and `resource` may appear once. Clients
    are public: `client_id=orgplane` may be sent (or HTTP Basic `orgplane:` with an empty
    secret); any other client id or any secret is `invalid_client`"."""
    url = platform.cp.url + "/oauth/token"
    base = [
        ("grant_type", TOKEN_EXCHANGE),
        ("subject_token", platform.access_token),
        ("subject_token_type", ACCESS_TOKEN),
        ("audience", f"org:{platform.instance.org['slug']}"),
    ]
    ok = httpx.post(url, data=dict(base), auth=("orgplane", ""))
    assert ok.status_code == 200, ok.text
    assert ok.headers["cache-control"] == "no-store"
    assert set(ok.json()) >= {"access_token", "issued_token_type", "token_type", "expires_in"}
    with_id = httpx.post(url, data={**dict(base), "client_id": "orgplane"})
    assert with_id.status_code == 200, with_id.text
    repeated = httpx.post(
        url,
        content="&".join(f"{k}={v}" for k, v in [*base, ("subject_token_type", ACCESS_TOKEN)]),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert repeated.status_code == 400
    assert repeated.json()["error"] == "invalid_request"
    for auth_, data in (((), {"client_id": "someone"}), (("orgplane", "secret"), {})):
        refused = httpx.post(url, data={**dict(base), **data}, auth=auth_ or None)
        assert refused.status_code == 401, refused.text
        assert refused.json()["error"] == "invalid_client"


def test_openid_configuration_claim(platform: Platform) -> None:
    """tokens.md: "`GET /.well-known/openid-configuration` is the same document with the OpenID
    Connect Discovery fields added"."""
    claim = "`GET /.well-known/openid-configuration` is the same document with the OpenID"
    assert claim in doc("tokens.md")
    oidc = httpx.get(platform.cp.url + "/.well-known/openid-configuration").json()
    oauth = httpx.get(platform.cp.url + "/.well-known/oauth-authorization-server").json()
    assert {k: oidc[k] for k in oauth if k != "claims_supported"} == {
        k: v for k, v in oauth.items() if k != "claims_supported"
    }


def test_instance_claims_host_and_tokens(platform: Platform) -> None:
    """org-instance.md: a foreign Host is 421 ``misdirected_request``, even on an unknown path;
    a bad token is 401 ``invalid_token`` with ``WWW-Authenticate: Bearer error="invalid_token"``,
    no token a bare ``Bearer`` (RFC 6750 §3.1; it said error= before); the probes skip both."""
    with platform.instance.client(host="other.example") as client:
        foreign = client.get("/no/such/path")
        probe = client.get("/healthz")
    assert foreign.status_code == 421
    assert foreign.json()["code"] == "misdirected_request"
    assert probe.status_code == 200
    with platform.instance.client() as client:
        anonymous = client.get("/api/v1/sessions")
    with platform.instance.client("a.b.c") as client:
        refused = client.get("/api/v1/sessions")
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert refused.status_code == 401
    assert refused.json()["code"] == "invalid_token"
    assert refused.headers["www-authenticate"] == 'Bearer error="invalid_token"'
