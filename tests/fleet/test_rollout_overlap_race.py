"""Overlapping rollouts created at the same moment: exactly one is made, the others are refused
(409 ``rollout_active``), on SQLite and PostgreSQL.

The app runs in the test's own event loop and the requests go through ``httpx.ASGITransport``
with ``asyncio.gather``, so they really interleave (database I/O included).
"""

from __future__ import annotations

import asyncio
from collections import Counter

from sqlmodel import select

from control_plane.db.fleet_models import Rollout, RolloutOrg
from control_plane.db.models import Instance
from control_plane.settings import Settings
from control_plane.users.service import create_user
from tests.interop.servers import app_in_this_loop, runtime_of_app
from tests.support.api import PASSWORD

CONCURRENT = 8
ADMIN = "fleet-admin@example.com"


async def test_overlapping_rollouts_sent_at_once_make_one(settings: Settings) -> None:
    async with app_in_this_loop(settings) as (app, client):
        runtime = runtime_of_app(app)
        async with runtime.sessions() as db:
            await create_user(db, email=ADMIN, password=PASSWORD, is_platform_admin=True)
            await db.commit()
        login = await client.post("/api/v1/auth/login", json={"email": ADMIN, "password": PASSWORD})
        assert login.status_code == 200, login.text
        admin = {"Authorization": f"Bearer {login.json()['access_token']}"}
        for name in ("1", "2"):
            made = await client.post(
                "/api/v1/versions",
                headers=admin,
                json={"name": name, "image": f"orgplane-instance:{name}"},
            )
            assert made.status_code == 201, made.text
        ids = []
        for n in range(CONCURRENT + 1):
            made = await client.post(
                "/api/v1/orgs", headers=admin, json={"name": f"Race {n}", "slug": f"race-{n}"}
            )
            assert made.status_code == 202, made.text
            ids.append(made.json()["id"])
        async with runtime.sessions() as db:
            db.add_all(
                Instance(org_id=org_id, provisioner="local", image="orgplane-instance:1")
                for org_id in ids
            )
            await db.commit()
        # Each rollout shares an org with the next: any two at once overlap or are neighbours.
        bodies = [
            {"to_version": "2", "target": {"kind": "orgs", "orgs": [f"race-{n}", f"race-{n + 1}"]}}
            for n in range(CONCURRENT)
        ]
        answers = await asyncio.wait_for(
            asyncio.gather(
                *(client.post("/api/v1/rollouts", headers=admin, json=b) for b in bodies)
            ),
            timeout=120,
        )
        outcomes = Counter((a.status_code, a.json().get("code")) for a in answers)
        assert outcomes[(201, None)] >= 1, outcomes
        assert set(outcomes) <= {(201, None), (409, "rollout_active")}, outcomes
        async with runtime.sessions() as db:
            made_ids = set((await db.exec(select(Rollout.id))).all())
            held = list((await db.exec(select(RolloutOrg.org_id))).all())
        assert made_ids == {a.json()["id"] for a in answers if a.status_code == 201}
        assert len(held) == len(set(held)), "an org is in two active rollouts"
