"""An org instance's browser sign-in, in process, against a control plane played by an httpx
transport (its token endpoint checks the instance's credential and PKCE verifier): the flow
over https (``__Host-`` cookies, Secure, HttpOnly, SameSite=Lax, no Domain), a callback the
browser did not start, a refusal, the session ending with the token's ``exp`` and with a
revocation, and sign-out (same origin only)."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from litestar.testing import TestClient

from org_instance.app import create_app
from tests.instance.helpers import ISSUER, FakeControlPlane, Signer, instance_config

HOST = "https://acme.orgplane.test"


def unsigned(claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2ln"


class TokenEndpoint:
    """``POST /oauth/token`` of the fake control plane."""

    def __init__(self, signer: Signer, org_id: str, credential: str) -> None:
        self.signer, self.org_id, self.credential = signer, org_id, credential
        self.challenge = ""
        self.calls: list[dict[str, str]] = []
        self.refuse = ""
        self.ttl = 300

    def __call__(self, request: httpx.Request) -> httpx.Response:
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        self.calls.append(form)
        client_id = f"oi-{self.org_id}"
        expected = "Basic " + base64.b64encode(f"{client_id}:{self.credential}".encode()).decode()
        digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
        pkce = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        if request.headers.get("authorization") != expected or pkce != self.challenge:
            return httpx.Response(401, json={"error": "invalid_client"})
        if self.refuse:
            return httpx.Response(400, json={"error": self.refuse, "error_description": "No."})
        token = self.signer.token(self.org_id, ttl=self.ttl, sub="user-ann", org_role="member")
        identity = {"iss": ISSUER, "sub": "user-ann", "aud": client_id, "email": "ann@x.test"}
        return httpx.Response(200, json={"access_token": token, "id_token": unsigned(identity)})


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[tuple[TestClient[Any], TokenEndpoint]]:
    signer = Signer()
    plane = FakeControlPlane([signer])
    config = instance_config(tmp_path, control_plane_url=ISSUER)
    endpoint = TokenEndpoint(signer, config.org_id, config.instance_credential)

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            return endpoint(request)
        return plane.handler(request)

    app = create_app(config, http=httpx.AsyncClient(transport=httpx.MockTransport(handler)))
    with TestClient(app, base_url=HOST) as client:
        yield client, endpoint


def start(client: TestClient[Any], endpoint: TokenEndpoint) -> dict[str, str]:
    """``/auth/login``: the authorize request's parameters."""
    answer = client.get("/auth/login", follow_redirects=False)
    assert answer.status_code == 303
    target = urlsplit(answer.headers["location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == f"{ISSUER}/oauth/authorize"
    params = {k: v[0] for k, v in parse_qs(target.query).items()}
    endpoint.challenge = params["code_challenge"]
    return params


def sign_in(client: TestClient[Any], endpoint: TokenEndpoint) -> httpx.Response:
    params = start(client, endpoint)
    return client.get(
        "/auth/callback", params={"state": params["state"], "code": "occ_x"}, follow_redirects=False
    )


def test_sign_in_over_https_sets_host_only_cookies(instance: Any) -> None:
    client, endpoint = instance
    params = start(client, endpoint)
    assert params["client_id"] == f"oi-{endpoint.org_id}"
    assert params["redirect_uri"] == f"{HOST}/auth/callback"
    assert params["code_challenge_method"] == "S256"
    login_cookie = client.cookies.jar
    assert [c.name for c in login_cookie] == ["__Host-orgplane_login"]
    done = client.get(
        "/auth/callback", params={"state": params["state"], "code": "occ_x"}, follow_redirects=False
    )
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/"
    session = next(
        h
        for h in done.headers.get_list("set-cookie")
        if h.startswith("__Host-orgplane_org_session=")
    )
    attributes = {a.strip().split("=")[0].lower() for a in session.split(";")[1:]}
    assert {"secure", "httponly", "path", "max-age"} <= attributes
    assert "domain" not in attributes
    assert "samesite=lax" in session.lower()
    max_age = int(session.lower().split("max-age=")[1].split(";")[0])
    assert 0 < max_age <= 300
    assert endpoint.calls[0]["redirect_uri"] == f"{HOST}/auth/callback"
    page = client.get("/")
    assert page.status_code == 200
    assert "ann@x.test" in page.text
    assert page.headers["cache-control"] == "no-store"
    assert "default-src 'none'" in page.headers["content-security-policy"]
    # The API still wants a Bearer token: the cookie opens no API route.
    assert client.get("/api/v1/me").status_code == 401


def test_a_callback_this_browser_did_not_start_is_refused(instance: Any) -> None:
    client, endpoint = instance
    params = start(client, endpoint)
    client.cookies.clear()
    answer = client.get("/auth/callback", params={"state": params["state"], "code": "occ_x"})
    assert answer.status_code == 400
    assert answer.json()["code"] == "sign_in_state_invalid"
    forged = client.get("/auth/callback", params={"state": "made-up", "code": "occ_x"})
    assert forged.json()["code"] == "sign_in_state_invalid"
    assert endpoint.calls == []  # nothing reached the control plane
    assert client.get("/", follow_redirects=False).status_code == 303


def test_a_refused_sign_in_opens_no_session(instance: Any) -> None:
    client, endpoint = instance
    endpoint.refuse = "invalid_target"
    answer = sign_in(client, endpoint)
    assert answer.status_code == 403
    assert answer.json()["code"] == "sign_in_refused"
    assert not any("org_session" in h for h in answer.headers.get_list("set-cookie"))


def test_the_session_ends_with_the_token_and_with_a_revocation(instance: Any) -> None:
    client, endpoint = instance
    endpoint.ttl = 2
    assert sign_in(client, endpoint).status_code == 303
    assert client.get("/").status_code == 200
    time.sleep(2.2)
    ended = client.get("/", follow_redirects=False)
    assert ended.status_code == 303
    assert ended.headers["location"] == "/auth/login"

    endpoint.ttl = 300
    assert sign_in(client, endpoint).status_code == 303
    assert client.get("/").status_code == 200
    client.app.state.instance.revocations.apply(b"sub:user-ann", str(int(time.time())).encode())
    assert client.get("/", follow_redirects=False).status_code == 303


def test_sign_out_takes_same_origin_posts_only(instance: Any) -> None:
    client, endpoint = instance
    assert sign_in(client, endpoint).status_code == 303
    cross = client.post("/auth/logout", headers={"Origin": "https://evil.test"})
    assert cross.status_code == 403
    assert client.get("/").status_code == 200
    out = client.post("/auth/logout", headers={"Origin": HOST})
    assert out.status_code == 200
    assert "Signed out" in out.text
    assert client.get("/", follow_redirects=False).status_code == 303
