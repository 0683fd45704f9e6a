"""The control plane's and the org instances' HTTP APIs, as a user drives them from outside."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from tests.support.wait import WaitTimeout, wait_until

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"


@dataclass
class Org:
    """An org created by the test: its id, slug, hostname and (once running) instance URL."""

    id: str
    slug: str
    host: str
    endpoint: str = ""
    token: str = ""

    def call(self, method: str, path: str, *, token: str = "", host: str = "", **kw: Any) -> Any:
        """A request to this org's instance at its network address, as ``host`` with ``token``
        (this org's own by default)."""
        headers = {
            "Authorization": f"Bearer {token or self.token}",
            "Host": host or self.host,
        }
        return httpx.request(method, f"{self.endpoint}{path}", headers=headers, timeout=10, **kw)


class ControlPlane:
    """A logged-in platform admin's client of the control plane."""

    def __init__(self, base_url: str, *, reach: Callable[[str], str] = str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=20)
        self.headers: dict[str, str] = {}
        #: Turns an instance endpoint the control plane recorded into one the test can reach.
        self.reach = reach

    def close(self) -> None:
        """Close the HTTP client."""
        self.http.close()

    def login(self, email: str, password: str) -> None:
        """Log in; later calls carry the access token."""
        answer = self.http.post("/api/v1/auth/login", json={"email": email, "password": password})
        assert answer.status_code == 200, answer.text
        self.headers = {"Authorization": f"Bearer {answer.json()['access_token']}"}

    def create_org(self, slug: str, base_domain: str) -> Org:
        """``POST /api/v1/orgs``: answers 202 at once, the reconciler does the rest."""
        answer = self.http.post(
            "/api/v1/orgs", headers=self.headers, json={"name": slug.title(), "slug": slug}
        )
        assert answer.status_code == 202, answer.text
        return Org(id=answer.json()["id"], slug=slug, host=f"{slug}.{base_domain}")

    def wait_pool_ready(self, *, timeout: float, why: Callable[[], str]) -> dict[str, Any]:
        """Until the warm pool has a ready spare and none warming (bounded)."""
        body: dict[str, Any] = {}

        def ready() -> dict[str, Any] | None:
            nonlocal body
            answer = self.http.get("/api/v1/pool", headers=self.headers)
            assert answer.status_code == 200, answer.text
            body = answer.json()
            return dict(body) if body["ready"] >= 1 and body["warming"] == 0 else None

        try:
            return wait_until(ready, what="a ready warm spare", timeout=timeout, interval=0.2)
        except WaitTimeout as exc:
            raise WaitTimeout(f"{exc}; the pool: {body}\n{why()}") from None

    def instance(self, org: Org) -> dict[str, Any]:
        """``GET /api/v1/orgs/{id}/instance``: phase, endpoint, heartbeat, events."""
        answer = self.http.get(f"/api/v1/orgs/{org.id}/instance", headers=self.headers)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def wait_running(self, orgs: list[Org], *, timeout: float, why: Callable[[], str]) -> None:
        """Until every org is ``running`` (bounded); sets each org's endpoint."""
        phases: dict[str, Any] = {}

        def all_running() -> bool:
            nonlocal phases
            bodies = {org.slug: self.instance(org) for org in orgs}
            phases = {slug: (b["phase"], b["reason"]) for slug, b in bodies.items()}
            if not all(phase == "running" for phase, _ in phases.values()):
                return False
            for org in orgs:
                org.endpoint = self.reach(bodies[org.slug]["endpoint"])
            return True

        try:
            wait_until(all_running, what="every org running", timeout=timeout, interval=0.5)
        except WaitTimeout as exc:
            raise WaitTimeout(f"{exc}; phases: {phases}\n{why()}") from None

    def exchange(self, org: Org) -> str:
        """An org token for ``org`` by RFC 8693 token exchange (``audience=org:<slug>``)."""
        answer = self.http.post(
            "/oauth/token",
            data={
                "grant_type": TOKEN_EXCHANGE,
                "subject_token": self.headers["Authorization"].split()[1],
                "subject_token_type": ACCESS_TOKEN_TYPE,
                "audience": f"org:{org.slug}",
            },
        )
        assert answer.status_code == 200, answer.text
        return str(answer.json()["access_token"])

    def delete_org(self, org: Org) -> None:
        """``DELETE /api/v1/orgs/{id}?confirm=<slug>``: 202, removed after the grace window."""
        answer = self.http.delete(
            f"/api/v1/orgs/{org.id}", params={"confirm": org.slug}, headers=self.headers
        )
        assert answer.status_code == 202, answer.text

    def org_status(self, org: Org) -> int:
        """The status code of ``GET /api/v1/orgs/{id}`` (404 once deleted)."""
        return self.http.get(f"/api/v1/orgs/{org.id}", headers=self.headers).status_code
