"""Per-plan and per-org instance images and the contract versions they speak: the allow-list's
``;contract=`` declarations, the plan-image API (platform admins only), the refusal of an image
that speaks no supported version by the API and by the reconciler, and which image an org runs."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from pydantic import ValidationError
from sqlmodel import col, select

from control_plane.capacity.spares import assign_claimed_spare
from control_plane.db.models import AuditEvent, Instance, InstanceEvent, Org, PlanImage, Spare
from control_plane.orgs.images import (
    contract_refusal,
    image_contracts,
    org_image,
    parse_entry,
)
from control_plane.settings import ProvisioningSettings, Settings
from provisioners.base import InstanceSpec
from tests.reconciler.test_settings_effects import FAST, reconciling
from tests.routing.helpers import add_org
from tests.support.api import add_user, assert_problem, direct_db, login, runtime_of
from tests.support.wait import eventually

DIGEST = "sha256:" + "c" * 64
V1 = "registry.example.com/team-app"
BOTH = "registry.example.com/both"
V2 = "registry.example.com/next"
ALLOWED = [V1, f"{BOTH};contract=1,2", f"{V2};contract=2", f"{V2}@{DIGEST};contract=1"]


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    result: Settings = make_settings(
        ORGPLANE_INSTANCE_IMAGE="orgplane-instance:latest",
        ORGPLANE_ALLOWED_IMAGES=json.dumps(ALLOWED),
    )
    return result


def test_allow_list_entries_declare_the_contract_versions_their_images_speak() -> None:
    provisioning = ProvisioningSettings(
        instance_image="orgplane-instance:1", allowed_images=ALLOWED
    )
    assert image_contracts(f"{V1}:3", provisioning) == {1}  # no declaration: version 1
    assert image_contracts(f"{BOTH}:3", provisioning) == {1, 2}
    assert image_contracts(f"{V2}:3", provisioning) == {2}
    assert image_contracts(f"{V2}@{DIGEST}", provisioning) == {1}  # the digest entry counts
    assert image_contracts("orgplane-instance:2", provisioning) == {1}  # the default's repository
    assert image_contracts("docker.io/evil/x", provisioning) is None
    assert contract_refusal(f"{BOTH}:3", provisioning) == ""
    assert contract_refusal(f"{V2}:3", provisioning) == (
        f"image {V2}:3 speaks contract version(s) [2]; this control plane supports [1]"
    )
    assert contract_refusal("docker.io/evil/x", provisioning) == ""  # not allowed: not its call
    for bad in (f"{V1};contract=", f"{V1};contract=0", f"{V1};contract=1;2", f"{V1};v=1"):
        assert parse_entry(bad) is None, bad
        with pytest.raises(ValidationError, match="declare contract versions as"):
            ProvisioningSettings(allowed_images=[bad])  # the control plane does not start
    spaced = parse_entry(f" {V1}@{DIGEST} ; contract=3,1 ")
    assert spaced is not None
    assert (spaced[0].digest, spaced[1]) == (DIGEST, {1, 3})


async def _audit(client: AsyncTestClient[Any], prefix: str) -> list[tuple[str, str, str]]:
    async with direct_db(client) as db:
        rows = (
            await db.exec(
                select(AuditEvent)
                .where(col(AuditEvent.action).startswith(prefix))
                .order_by(col(AuditEvent.id))
            )
        ).all()
    return [(a.action, a.outcome, a.detail.get("code", "")) for a in rows]


async def test_only_platform_admins_set_a_plans_image_and_only_to_a_supported_one(
    client: AsyncTestClient[Any],
) -> None:
    owner = await add_user(client, "owner@plans.test")
    await add_user(client, "root@example.com", admin=True)
    await add_org(client, "plan-tenant", members={owner: "owner"})
    tenant, root = await login(client, "owner@plans.test"), await login(client, "root@example.com")
    url = "/api/v1/plans/team/image"

    assert_problem(await client.get(url, headers=tenant), 403, "platform_admin_required")
    refused = await client.put(url, headers=tenant, json={"image": f"{V1}:1"})
    assert_problem(refused, 403, "platform_admin_required")
    assert_problem(await client.delete(url, headers=tenant), 403, "platform_admin_required")
    for plan, image, status, code in (
        ("gold", f"{V1}:1", 400, "unknown_plan"),
        ("team", "docker.io/evil/x:1", 403, "image_not_allowed"),
        ("team", "Not An Image", 400, "invalid_image"),
    ):
        answer = await client.put(
            f"/api/v1/plans/{plan}/image", headers=root, json={"image": image}
        )
        assert_problem(answer, status, code)
    speaks_two = await client.put(url, headers=root, json={"image": f"{V2}:9"})
    problem = assert_problem(speaks_two, 409, "image_contract_unsupported")
    assert (problem["supported"], problem["contract_versions"]) == ([1], [2])
    async with direct_db(client) as db:
        assert (await db.exec(select(PlanImage))).all() == []  # nothing was set

    default = await client.get(url, headers=root)
    assert default.json() == {
        "plan": "team",
        "image": "orgplane-instance:latest",
        "source": "default",
        "contract_versions": [1],
    }
    done = await client.put(url, headers=root, json={"image": f"{BOTH}:4"})
    assert done.status_code == 200, done.text
    assert done.json() == {
        "plan": "team",
        "image": f"{BOTH}:4",
        "source": "plan",
        "contract_versions": [1, 2],
    }
    assert (await client.get(url, headers=root)).json()["image"] == f"{BOTH}:4"
    assert (await client.delete(url, headers=root)).status_code == 204
    assert (await client.get(url, headers=root)).json()["source"] == "default"
    assert await _audit(client, "plan.") == [
        ("plan.image_set", "denied", "platform_admin_required"),
        ("plan.image_cleared", "denied", "platform_admin_required"),
        ("plan.image_set", "denied", "unknown_plan"),
        ("plan.image_set", "denied", "image_not_allowed"),
        ("plan.image_set", "denied", "invalid_image"),
        ("plan.image_set", "denied", "image_contract_unsupported"),
        ("plan.image_set", "success", ""),
        ("plan.image_cleared", "success", ""),
    ]


async def test_a_redeploy_to_an_image_of_an_unsupported_version_is_refused_and_shown(
    client: AsyncTestClient[Any],
) -> None:
    await add_user(client, "root@example.com", admin=True)
    org_id = await add_org(client, "redeploy-v2", endpoint="http://127.0.0.1:9", plan="free")
    root = await login(client, "root@example.com")
    url = f"/api/v1/orgs/{org_id}/instance/actions"
    before = (await client.get(f"/api/v1/orgs/{org_id}/instance", headers=root)).json()

    refused = await client.post(url, headers=root, json={"action": "redeploy", "image": f"{V2}:1"})
    problem = assert_problem(refused, 409, "image_contract_unsupported")
    assert problem["supported"] == [1]
    after = (await client.get(f"/api/v1/orgs/{org_id}/instance", headers=root)).json()
    assert {k: after[k] for k in ("image", "pinned_image", "generation")} == {
        k: before[k] for k in ("image", "pinned_image", "generation")
    }
    assert [e["kind"] for e in after["events"]] == ["image.refused"]
    assert "speaks contract version(s) [2]" in after["events"][0]["message"]
    assert await _audit(client, "instance.") == [
        ("instance.redeploy", "denied", "image_contract_unsupported")
    ]

    pinned = await client.post(url, headers=root, json={"action": "redeploy", "image": f"{BOTH}:1"})
    assert pinned.status_code == 202, pinned.text
    assert (pinned.json()["image"], pinned.json()["pinned_image"]) == (f"{BOTH}:1", f"{BOTH}:1")
    async with direct_db(client) as db:
        db.add(PlanImage(plan="free", image=f"{V1}:5"))
        await db.commit()
    unpinned = await client.post(url, headers=root, json={"action": "redeploy"})
    assert (unpinned.json()["image"], unpinned.json()["pinned_image"]) == (f"{V1}:5", "")


async def test_the_org_image_outranks_the_plan_image_which_outranks_the_default(
    client: AsyncTestClient[Any],
) -> None:
    provisioning = ProvisioningSettings(
        instance_image="orgplane-instance:latest", allowed_images=ALLOWED
    )
    async with direct_db(client) as db:
        org = Org(slug="ranks", name="Ranks", plan="team")
        instance = Instance(org_id="x", provisioner="local")

        async def image() -> str:
            return await org_image(db, org=org, instance=instance, settings=provisioning)

        assert await image() == "orgplane-instance:latest"
        db.add(PlanImage(plan="team", image=f"{V1}:2"))
        await db.commit()
        assert await image() == f"{V1}:2"
        instance.pinned_image = f"{BOTH}:1"
        assert await image() == f"{BOTH}:1"
        instance.pinned_image = "docker.io/evil/x:1"  # no longer allowed: skipped
        assert await image() == f"{V1}:2"


async def add_org_of_plan(client: AsyncTestClient[Any], plan: str) -> str:
    async with direct_db(client) as db:
        org = Org(slug=f"plan-{plan}", name=plan.title(), plan=plan)
        db.add(org)
        await db.commit()
        org_id = org.id
    client.app.state.reconciler.wake()
    return org_id


@pytest.mark.parametrize("db_backend", ["sqlite"])  # the refusal does not depend on the database
async def test_the_reconciler_deploys_the_plans_image_and_refuses_one_of_an_unsupported_version(
    make_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An image set while the allow-list said it speaks version 1, which now says 2: the
    reconciler leaves the backend alone, fails the org with the reason, and tells the org's
    timeline and the audit log once (not on every retry)."""
    settings = make_settings(
        **FAST,
        ORGPLANE_INSTANCE_IMAGE="orgplane-instance:latest",
        ORGPLANE_ALLOWED_IMAGES=json.dumps(ALLOWED),
    )
    async with reconciling(monkeypatch, settings) as (client, backend):
        async with direct_db(client) as db:
            db.add(PlanImage(plan="team", image=f"{V1}:7"))
            db.add(PlanImage(plan="enterprise", image=f"{V2}:1"))  # speaks 2 only
            await db.commit()
        team = await add_org_of_plan(client, "team")
        refused = await add_org_of_plan(client, "enterprise")
        await eventually(lambda: team in backend.specs, what="the team org applied")
        assert backend.specs[team].image == f"{V1}:7"

        async def refused_twice() -> bool:
            async with direct_db(client) as db:
                instance = await db.get(Instance, refused)
                return instance is not None and instance.attempts >= 2

        await eventually(refused_twice, what="two refused attempts", timeout=15)
        assert refused not in backend.specs
        async with direct_db(client) as db:
            org = await db.get(Org, refused)
            assert org is not None
            assert org.phase == "failed"
            assert "speaks contract version(s) [2]" in org.reason
            events = (
                await db.exec(
                    select(InstanceEvent).where(
                        InstanceEvent.org_id == refused, InstanceEvent.kind == "image.refused"
                    )
                )
            ).all()
            audit = (
                await db.exec(
                    select(AuditEvent).where(AuditEvent.action == "instance.image_refused")
                )
            ).all()
        assert len(events) == 1
        assert [(a.org_id, a.outcome, a.detail["image"]) for a in audit] == [
            (refused, "denied", f"{V2}:1")
        ]


async def test_a_warm_pool_spare_is_not_given_to_an_org_of_another_image(
    client: AsyncTestClient[Any],
) -> None:
    """Spares run the default image: an org with its own (or its plan's) image starts cold."""
    org_id = await add_org(client, "no-spare")
    async with direct_db(client) as db:
        db.add(
            Spare(id=org_id, provisioner="local", state="claimed", endpoint="http://127.0.0.1:9")
        )
        await db.commit()
        org = await db.get(Org, org_id)
        assert org is not None
        spec = InstanceSpec(org_id=org_id, slug="no-spare", instance_id="i", image=f"{V1}:3")
        status = await assign_claimed_spare(
            runtime_of(client), db, provisioner=SimpleNamespace(name="local"), org=org, spec=spec
        )
        await db.commit()
        assert status is None  # the caller applies the org's own image, cold
        assert await db.get(Spare, org_id) is None
        events = (await db.exec(select(InstanceEvent).where(InstanceEvent.org_id == org_id))).all()
    assert [(e.kind, e.message) for e in events] == [
        ("pool.assign_failed", f"the org runs image {V1}:3, not the spares' default image")
    ]
