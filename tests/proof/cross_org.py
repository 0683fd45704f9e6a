"""A seeded generator of cross-org requests: org A's credentials aimed at org B.

Every request carries one of A's credentials (control-plane access tokens of A's owner and
member, A's org tokens, A's runner token, or a forgery made from A's org token) and one of B's
ids, slugs, object ids, hostnames or B's instance endpoint. The plan is a pure function of the
seed, so a failing request can be replayed from the seed and its index.
"""

from __future__ import annotations

import base64
import json
import random
from dataclasses import dataclass
from typing import Any

from orgplane_wire.contract import org_audience
from tests.integration.test_instance_cross_org import endpoints
from tests.proof.world import Tenant

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"


@dataclass(frozen=True)
class Attack:
    """One planned request; ``listing`` answers may be 2xx if they show nothing of B."""

    index: int
    base_url: str
    method: str
    path: str
    headers: dict[str, str]
    json: Any = None
    form: dict[str, str] | None = None
    content: bytes | None = None
    listing: bool = False

    def describe(self) -> str:
        host = self.headers.get("Host", "")
        return f"#{self.index} {self.method} {self.base_url}{self.path} host={host}"


def forged(token: str, *, org_id: str) -> str:
    """A's org token with its payload rewritten to B's org, A's signature kept (invalid)."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(org_id=org_id, aud=org_audience(org_id))
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{body}.{signature}"


def unsigned(token: str, *, org_id: str) -> str:
    """A's claims for B's org under ``alg: none``."""
    head = base64.urlsafe_b64encode(b'{"alg":"none","typ":"at+jwt"}').rstrip(b"=").decode()
    payload = forged(token, org_id=org_id).split(".")[1]
    return f"{head}.{payload}."


class CrossOrgPlan:
    """Draws attacks of A's credentials on B from a seeded random generator."""

    def __init__(self, *, cp_url: str, a: Tenant, b: Tenant, seed: int) -> None:
        assert a.instance is not None
        assert b.instance is not None
        self.cp_url, self.a, self.b = cp_url, a, b
        self.rng = random.Random(seed)
        self.cp_tokens = [a.owner_access, a.member_access, a.owner_org_token]
        self.org_tokens = [
            a.owner_org_token,
            a.member_org_token,
            a.owner_access,
            a.objects["runner_token"],
            forged(a.owner_org_token, org_id=b.org_id),
            unsigned(a.owner_org_token, org_id=b.org_id),
        ]
        self.b_refs = [b.org_id, b.slug]
        self.b_users = [b.owner_id, b.member_id]
        self.hosts = [b.hostname, a.hostname, b.hostname.upper(), f"{b.slug}.localhost"]

    def _pick(self, options: list[Any]) -> Any:
        return options[self.rng.randrange(len(options))]

    def _cp(self, index: int) -> Attack:
        ref, user = self._pick(self.b_refs), self._pick(self.b_users)
        headers = {"Authorization": f"Bearer {self._pick(self.cp_tokens)}"}
        if self.rng.random() < 0.2:
            headers["Host"] = self._pick(self.hosts)
        org = f"/api/v1/orgs/{ref}"
        choices: list[tuple[str, str, Any, bool]] = [
            ("GET", org, None, False),
            ("PATCH", org, {"name": "pwned"}, False),
            ("DELETE", f"{org}?confirm={self.b.slug}", None, False),
            ("POST", f"{org}/{self._pick(['suspend', 'resume', 'lock', 'unlock'])}", None, False),
            ("POST", f"{org}/deletion/cancel", None, False),
            ("GET", f"{org}/members", None, False),
            ("POST", f"{org}/members", {"email": self.a.owner_email, "role": "owner"}, False),
            ("PATCH", f"{org}/members/{user}", {"role": "member"}, False),
            ("DELETE", f"{org}/members/{user}", None, False),
            ("GET", f"{org}/invites", None, False),
            ("POST", f"{org}/invites", {"email": "x@a.proof.test", "role": "admin"}, False),
            ("GET", f"{org}/domains", None, False),
            ("POST", f"{org}/domains", {"hostname": "evil.proof.test"}, False),
            ("GET", f"{org}/instance", None, False),
            ("POST", f"{org}/instance/actions", {"action": "restart"}, False),
            ("GET", f"{org}/usage", None, False),
            ("GET", f"{org}/access-requests", None, False),
            ("POST", f"{org}/access-requests", {"reason": "let me in"}, False),
            ("GET", f"{org}/access-events", None, False),
            ("GET", f"/api/v1/users/{user}", None, False),
            ("PATCH", f"/api/v1/users/{user}", {"disabled": True}, False),
            ("GET", f"/api/v1/audit?org_id={self.b.org_id}", None, True),
            ("GET", f"/api/v1/orgs/lookup?ids={self.b.org_id}", None, True),
            ("GET", f"/api/v1/orgs/lookup?q={self.b.slug}", None, True),
            ("GET", f"/api/v1/orgs?q={self.b.slug}", None, True),
            ("GET", "/api/v1/me/orgs", None, True),
        ]
        method, path, body, listing = self._pick(choices)
        return Attack(index, self.cp_url, method, path, headers, json=body, listing=listing)

    def _exchange(self, index: int) -> Attack:
        b = self.b
        assert b.instance is not None
        target = self._pick(
            [
                ("audience", f"org:{b.slug}"),
                ("audience", f"org:{b.org_id}"),
                ("audience", org_audience(b.org_id)),
                ("resource", f"https://{b.hostname}"),
                ("resource", b.instance.url),
            ]
        )
        form = {
            "grant_type": TOKEN_EXCHANGE,
            "subject_token": self._pick(self.cp_tokens),
            "subject_token_type": ACCESS_TOKEN_TYPE,
            target[0]: target[1],
        }
        return Attack(index, self.cp_url, "POST", "/oauth/token", {}, form=form)

    def _instance(self, index: int) -> Attack:
        b, objects = self.b, self.b.objects
        sid, fid, rid = objects["session"], objects["file"], objects["runner"]
        # Every endpoint of an instance aimed at B's objects, and the runner heartbeat.
        choices = [*endpoints(objects), ("POST", "/api/v1/runners/heartbeat", {})]
        method, path, body = self._pick(choices)
        # Mostly B's endpoint; sometimes A's own instance told it is B (Host) or asked for B's ids.
        instance = b.instance if self.rng.random() < 0.8 else self.a.instance
        assert instance is not None
        host = self._pick(self.hosts) if instance is b.instance else self._pick(self.hosts[:1])
        headers = {"Host": host, "Authorization": f"Bearer {self._pick(self.org_tokens)}"}
        if instance is self.a.instance and self.rng.random() < 0.5:
            headers["Host"] = self.a.hostname  # A at home, asking for B's object ids
            headers["Authorization"] = f"Bearer {self.a.owner_org_token}"
            if not any(x in path for x in (sid, fid, rid)):
                path = f"/api/v1/sessions/{sid}"
        if isinstance(body, bytes):
            return Attack(index, instance.url, method, path, headers, content=body)
        return Attack(index, instance.url, method, path, headers, json=body)

    def draw(self, index: int) -> Attack:
        """The attack at ``index`` (call in order: the generator is sequential)."""
        roll = self.rng.random()
        if roll < 0.35:
            return self._cp(index)
        if roll < 0.45:
            return self._exchange(index)
        return self._instance(index)
