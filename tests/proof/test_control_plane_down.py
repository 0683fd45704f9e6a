"""The control plane stops for a while under steady org traffic; the orgs do not notice.

Two real org instances (local provisioner, reconciler on) serve a client that renews its org
token by token exchange while the control plane is up. The control-plane process is then
stopped (SIGTERM) for ``outage_seconds`` and started again. Figures: the share of requests with
a still-valid token that were served (must be 100%), requests with a token past its expiry
(and past the instances' clock-skew leeway) that were accepted (must be 0), and instance
restarts (pids unchanged, and no restart afterwards either: the reconciler must not restart an
instance for a silence it could not have heard).

Heartbeat interval and restart threshold keep the production ratio (10 s / 60 s -> 1 s / 6 s),
so the outage is many times the threshold, as a few minutes' outage is in production.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from org_instance.verifier import LEEWAY_SECONDS
from provisioners.base import ProvisionerOptions
from provisioners.local import LocalProvisioner
from tests.proof.conftest import Scale
from tests.reconciler.test_crash_convergence import ADMIN, Plane
from tests.support.wait import WaitTimeout, eventually

pytestmark = pytest.mark.slow

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
HEARTBEAT_INTERVAL = 1.0
RESTART_AFTER = 6.0
#: A token this close to its expiry is neither counted valid nor expired (clock granularity).
MARGIN = 1.0


@dataclass
class Org:
    slug: str
    endpoint: str = ""
    token: str = field(default="", repr=False)
    expires: float = 0.0
    #: A token minted at the start and kept: it expires during the outage.
    old_token: str = field(default="", repr=False)
    old_expires: float = 0.0


@dataclass
class Figures:
    """What the clients saw, by token state and control-plane state."""

    valid: Counter[str] = field(default_factory=Counter)
    expired: Counter[str] = field(default_factory=Counter)
    leeway: Counter[str] = field(default_factory=Counter)
    renewals: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)


async def exchange(
    http: httpx.AsyncClient, cp_url: str, access: str, slug: str
) -> tuple[str, float]:
    answer = await http.post(
        cp_url + "/oauth/token",
        data={
            "grant_type": TOKEN_EXCHANGE,
            "subject_token": access,
            "subject_token_type": ACCESS_TOKEN_TYPE,
            "audience": f"org:{slug}",
        },
    )
    answer.raise_for_status()
    token = str(answer.json()["access_token"])
    return token, float(jwt.decode(token, options={"verify_signature": False})["exp"])


async def steady_client(
    http: httpx.AsyncClient,
    *,
    org: Org,
    cp_url: str,
    access: str,
    ttl: int,
    cp_up: asyncio.Event,
    stop_at: asyncio.Event,
    figures: Figures,
) -> None:
    """Requests every 50 ms with the current token (renewed while the control plane is up)
    and every 5th with the old one; each is tallied by its token's state when sent."""
    tick = 0
    while not stop_at.is_set():
        now = time.time()
        if cp_up.is_set() and org.expires - now < 0.6 * ttl:
            try:
                org.token, org.expires = await exchange(http, cp_url, access, org.slug)
                figures.renewals["ok"] += 1
            except httpx.HTTPError:
                figures.renewals["failed"] += 1  # going down right now: keep the current one
        for token, expires in [(org.token, org.expires)] + (
            [(org.old_token, org.old_expires)] if tick % 5 == 0 else []
        ):
            await _request(http, org=org, token=token, expires=expires, figures=figures)
        tick += 1
        await asyncio.sleep(0.05)  # the pace of the traffic


async def _request(
    http: httpx.AsyncClient, *, org: Org, token: str, expires: float, figures: Figures
) -> None:
    sent = time.time()
    try:
        answer = await http.get(
            org.endpoint + "/api/v1/sessions",
            headers={"Host": f"{org.slug}.localhost", "Authorization": f"Bearer {token}"},
        )
        outcome = "served" if answer.status_code == 200 else str(answer.status_code)
    except httpx.HTTPError as exc:
        outcome = type(exc).__name__
    if sent < expires - MARGIN:
        figures.valid[outcome] += 1
        if outcome != "served":
            figures.failures.append(f"{org.slug} valid token -> {outcome}")
    elif sent > expires + LEEWAY_SECONDS + MARGIN:
        figures.expired[outcome] += 1
    elif sent > expires + MARGIN:
        figures.leeway[outcome] += 1


async def admin_access(http: httpx.AsyncClient, cp_url: str) -> str:
    answer = await http.post(cp_url + "/api/v1/auth/login", json=ADMIN)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


async def running_endpoint(http: httpx.AsyncClient, cp_url: str, access: str, slug: str) -> str:
    body: dict[str, Any] = {}

    async def running() -> str:
        nonlocal body
        answer = await http.get(
            f"{cp_url}/api/v1/orgs/{slug}/instance", headers={"Authorization": f"Bearer {access}"}
        )
        body = answer.json()
        return str(body["endpoint"]) if body.get("phase") == "running" else ""

    try:
        return await eventually(running, what=f"{slug} running", interval=0.3)
    except WaitTimeout as exc:
        raise WaitTimeout(f"{exc}; its state: {body}") from None


async def pids(local: LocalProvisioner) -> dict[str, int]:
    return {s.org_id: int(s.handle.get("pid", 0)) for s in await local.list()}


async def test_orgs_keep_serving_while_the_control_plane_is_down(
    tmp_path: Path, scale: Scale, seed: int
) -> None:
    deployment = f"proof-{uuid.uuid4().hex[:8]}"
    plane = Plane(tmp_path, deployment)
    plane.env.pop("ORGPLANE_REDIS_URL")  # memory stores: this suite is about the control plane
    plane.env.update(
        ORGPLANE_ORG_TOKEN_TTL=str(scale.outage_token_ttl),
        ORGPLANE_HEARTBEAT_INTERVAL=str(HEARTBEAT_INTERVAL),
        ORGPLANE_UNHEALTHY_RESTART_AFTER=str(RESTART_AFTER),
        ORGPLANE_LEASE_SECONDS="30",
    )
    local = LocalProvisioner(
        options=ProvisionerOptions(deployment_id=deployment, data_root=tmp_path / "data")
    )
    figures, cp_up, done = Figures(), asyncio.Event(), asyncio.Event()
    orgs = [Org(f"proof-down-{x}-{seed % 10_000}") for x in ("a", "b")]
    try:
        plane.start()
        cp_up.set()
        async with httpx.AsyncClient(timeout=5) as http:
            access = await admin_access(http, plane.url)
            headers = {"Authorization": f"Bearer {access}"}
            for org in orgs:
                # The team plan's rate limit (6,000 a minute) is well above this traffic.
                body = {"name": org.slug, "slug": org.slug, "plan": "team"}
                made = await http.post(plane.url + "/api/v1/orgs", headers=headers, json=body)
                assert made.status_code == 202, made.text
            for org in orgs:
                org.endpoint = await running_endpoint(http, plane.url, access, org.slug)
                org.old_token, org.old_expires = await exchange(http, plane.url, access, org.slug)
            before = await pids(local)
            assert len(before) == 2, before
            assert all(before.values()), before
            clients = [
                asyncio.create_task(
                    steady_client(
                        http,
                        org=org,
                        cp_url=plane.url,
                        access=access,
                        ttl=scale.outage_token_ttl,
                        cp_up=cp_up,
                        stop_at=done,
                        figures=figures,
                    )
                )
                for org in orgs
            ]
            await asyncio.sleep(3)  # steady traffic for a while before the outage
            cp_up.clear()
            await asyncio.to_thread(plane.stop)
            down_at = time.time()
            # The outage: long enough for the old tokens to be past expiry and leeway a while.
            old_dead = max(o.old_expires for o in orgs) + LEEWAY_SECONDS + 5
            await asyncio.sleep(max(scale.outage_seconds, old_dead - down_at))
            outage = time.time() - down_at
            during = await pids(local)
            await asyncio.to_thread(plane.start)
            cp_up.set()
            # Time must pass: past the restart threshold and several reconcile passes after
            # the return, no instance may have been restarted.
            await asyncio.sleep(RESTART_AFTER + 6)
            done.set()
            await asyncio.gather(*clients)
            after = await pids(local)
            for org in orgs:
                assert await running_endpoint(http, plane.url, access, org.slug) == org.endpoint
    finally:
        done.set()
        plane.stop()
        for status in await local.list():
            await local.remove(org_id=status.org_id, keep_data=False)
    valid = sum(figures.valid.values())
    report = (
        f"seed={seed} outage={outage:.0f}s ttl={scale.outage_token_ttl}s "
        f"valid={dict(figures.valid)} "
        f"expired={dict(figures.expired)} leeway={dict(figures.leeway)} "
        f"renewals={dict(figures.renewals)} pids before={before} during={during} after={after}"
    )
    print(f"control plane down: {report}")
    assert figures.valid["served"] == valid > 0, f"{report}\n{figures.failures[:10]}"
    assert sum(figures.expired.values()) > 0, f"no expired token was tried: {report}"
    assert figures.expired["served"] == 0, report
    assert set(figures.expired) == {"401"}, report
    assert before == during == after, f"instances restarted: {report}"
