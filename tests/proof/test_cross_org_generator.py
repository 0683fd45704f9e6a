"""Thousands of seeded cross-org requests (org A's credentials, org B's ids, paths, hosts and
endpoint) against the control plane and both real instances: none is accepted.

Accepted means a 2xx on B's resource, or, for listings a stranger may call, a 2xx that shows
anything of B. An answer carrying B's name, emails or canary data counts too, whatever its
status. 5xx answers and transport errors fail the suite as well.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.proof.conftest import Scale
from tests.proof.cross_org import Attack, CrossOrgPlan
from tests.proof.world import Tenant, leaked

pytestmark = pytest.mark.slow

CONCURRENCY = 32


@dataclass
class Tally:
    """Answers of a run, by status, with the first offenders kept for the report."""

    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    accepted: list[str] = field(default_factory=list)
    server_errors: list[str] = field(default_factory=list)
    transport_errors: list[str] = field(default_factory=list)

    def record(self, attack: Attack, answer: httpx.Response, b: Tenant) -> None:
        self.sent += 1
        self.statuses[answer.status_code] += 1
        sent = attack.path + str(attack.json or "") + str(attack.form or "")
        found = leaked(b, answer.text, sent)
        ok = 200 <= answer.status_code < 300
        if (ok and not attack.listing) or found:
            self.accepted.append(f"{attack.describe()} -> {answer.status_code} {found}")
        if answer.status_code >= 500:
            self.server_errors.append(f"{attack.describe()} -> {answer.text[:200]}")


async def send(http: httpx.AsyncClient, attack: Attack) -> httpx.Response:
    return await http.request(
        attack.method,
        attack.base_url + attack.path,
        headers=attack.headers,
        json=attack.json,
        data=attack.form,
        content=attack.content,
    )


async def run_plan(
    plan: CrossOrgPlan, *, count: int, deadline: float, b: Tenant
) -> tuple[Tally, float]:
    """Send ``count`` planned attacks with ``CONCURRENCY`` workers; stop at ``deadline``."""
    tally, next_index = Tally(), iter(range(count))
    # httpx's own keep-alive expiry (5 s), as a user's client would have: the servers keep idle
    # connections longer than that (tests/integration/test_keep_alive.py), so the client always
    # drops one before the server does.
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    started = time.monotonic()
    async with httpx.AsyncClient(limits=limits, timeout=30) as http:

        async def worker() -> None:
            for index in next_index:
                if time.monotonic() > deadline:
                    return
                attack = plan.draw(index)
                try:
                    tally.record(attack, await send(http, attack), b)
                except httpx.HTTPError as exc:
                    tally.transport_errors.append(f"{attack.describe()}: {exc!r}")

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return tally, time.monotonic() - started


def test_cross_org_requests_are_never_accepted(
    tenants: dict[str, Any], scale: Scale, seed: int
) -> None:
    cp, a, b = tenants["cp"], tenants["A"], tenants["B"]
    plan = CrossOrgPlan(cp_url=cp.url, a=a, b=b, seed=seed)
    deadline = time.monotonic() + scale.cross_org_seconds
    tally, elapsed = asyncio.run(
        run_plan(plan, count=scale.cross_org_requests, deadline=deadline, b=b)
    )
    figures = (
        f"seed={seed} sent={tally.sent} in {elapsed:.1f}s ({tally.sent / elapsed:.0f} req/s) "
        f"statuses={dict(sorted(tally.statuses.items()))}"
    )
    print(f"cross-org generator: {figures}")
    assert not tally.accepted, f"{figures}\naccepted: {tally.accepted[:20]}"
    assert not tally.server_errors, f"{figures}\n5xx: {tally.server_errors[:20]}"
    assert not tally.transport_errors, f"{figures}\nerrors: {tally.transport_errors[:20]}"
    assert tally.sent == scale.cross_org_requests, f"time cap reached first: {figures}"
    # B's data is intact after the storm.
    assert b.instance is not None
    with b.instance.client(b.owner_org_token) as client:
        assert client.get("/api/v1/settings/canary").json()["value"] == b.objects["canary"]
        assert client.get(f"/api/v1/sessions/{b.objects['session']}").status_code == 200
