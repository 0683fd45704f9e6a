"""A tenant never chooses what the platform runs: redeploy is for platform admins, and only to
an image on the allow-list (ORGPLANE_ALLOWED_IMAGES); every refusal is audited and changes
nothing. On the app without a reconciler; the docker backend's side (images carrying routing
labels) is in tests/provisioners/test_docker.py."""

from __future__ import annotations

import json
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlmodel import col, select

from control_plane.db.models import AuditEvent, Instance, Org
from control_plane.orgs.images import image_allowed, parse_image, runnable_image
from control_plane.settings import ProvisioningSettings, Settings
from tests.routing.helpers import add_org
from tests.support.api import add_user, assert_problem, direct_db, login

DIGEST = "sha256:" + "a" * 64
OTHER_DIGEST = "sha256:" + "b" * 64
ALLOWED = ["registry.example.com/orgplane/instance", f"registry.example.com/pinned@{DIGEST}"]


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    result: Settings = make_settings(
        ORGPLANE_INSTANCE_IMAGE="orgplane-instance:latest",
        ORGPLANE_ALLOWED_IMAGES=json.dumps(ALLOWED),
    )
    return result


async def _org_with_instance(client: AsyncTestClient[Any]) -> tuple[str, dict[str, str]]:
    owner = await add_user(client, "owner@tenant.test")
    await add_user(client, "root@example.com", admin=True)
    org_id = await add_org(
        client, "tenant", members={owner: "owner"}, endpoint="http://127.0.0.1:9"
    )
    return org_id, await login(client, "owner@tenant.test")


async def _image_and_audit(client: AsyncTestClient[Any], org_id: str) -> tuple[str, list[Any]]:
    async with direct_db(client) as db:
        instance = await db.get(Instance, org_id)
        org = await db.get(Org, org_id)
        assert instance is not None
        assert org is not None
        events = (
            await db.exec(
                select(AuditEvent)
                .where(
                    col(AuditEvent.org_id) == org_id, col(AuditEvent.action).startswith("instance.")
                )
                .order_by(col(AuditEvent.id))
            )
        ).all()
        return f"{instance.image}|{org.generation}", list(events)


async def test_an_org_owner_cannot_redeploy_or_choose_an_image(
    client: AsyncTestClient[Any],
) -> None:
    """Failed on the old code: the owner's redeploy with ``evil/miner`` answered 202 and the
    instance row took the image (the reconciler would then have run it)."""
    org_id, owner = await _org_with_instance(client)
    url = f"/api/v1/orgs/{org_id}/instance/actions"
    before, _ = await _image_and_audit(client, org_id)

    chosen = await client.post(url, headers=owner, json={"action": "redeploy", "image": "evil/x"})
    assert_problem(chosen, 403, "platform_admin_required")
    plain = await client.post(url, headers=owner, json={"action": "redeploy"})
    assert_problem(plain, 403, "platform_admin_required")
    smuggled = await client.post(url, headers=owner, json={"action": "start", "image": "evil/x"})
    assert_problem(smuggled, 400, "invalid_image")

    after, events = await _image_and_audit(client, org_id)
    assert after == before  # neither the image nor the generation moved
    denied = [(e.action, e.outcome, e.detail["code"], e.detail["image"]) for e in events]
    assert denied == [
        ("instance.redeploy", "denied", "platform_admin_required", "evil/x"),
        ("instance.redeploy", "denied", "platform_admin_required", ""),
        ("instance.start", "denied", "invalid_image", "evil/x"),
    ]


async def test_platform_admins_redeploy_only_to_allowed_images(
    client: AsyncTestClient[Any],
) -> None:
    """Failed on the old code: ``docker.io/attacker/miner:1`` answered 202 for a platform admin
    too (no allow-list existed)."""
    org_id, _ = await _org_with_instance(client)
    root = await login(client, "root@example.com")
    url = f"/api/v1/orgs/{org_id}/instance/actions"

    for image, status, code in (
        ("docker.io/attacker/miner:1", 403, "image_not_allowed"),
        ("registry.example.com/orgplane/instance-evil:1", 403, "image_not_allowed"),
        (f"registry.example.com/pinned@{OTHER_DIGEST}", 403, "image_not_allowed"),
        ("registry.example.com/pinned:latest", 403, "image_not_allowed"),
        ("UPPER/Case", 400, "invalid_image"),
        ("a b", 400, "invalid_image"),
    ):
        before, _ = await _image_and_audit(client, org_id)
        refused = await client.post(url, headers=root, json={"action": "redeploy", "image": image})
        assert_problem(refused, status, code)
        after, events = await _image_and_audit(client, org_id)
        assert after == before
        assert (events[-1].outcome, events[-1].detail["image"]) == ("denied", image)

    for image in (
        "registry.example.com/orgplane/instance:2.1",
        f"registry.example.com/orgplane/instance@{OTHER_DIGEST}",
        f"registry.example.com/pinned@{DIGEST}",
        "orgplane-instance:next",  # the default image's repository
    ):
        done = await client.post(url, headers=root, json={"action": "redeploy", "image": image})
        assert done.status_code == 202, done.text
        assert done.json()["image"] == image
    _, events = await _image_and_audit(client, org_id)
    assert (events[-1].action, events[-1].outcome) == ("instance.redeploy", "success")


def test_the_reconciler_runs_only_allowed_images() -> None:
    """Failed on the old code: build_spec ran whatever image the instance row held."""
    settings = ProvisioningSettings(
        instance_image="orgplane-instance:latest", allowed_images=ALLOWED
    )
    assert runnable_image("evil/miner:1", settings) == "orgplane-instance:latest"
    assert runnable_image("", settings) == "orgplane-instance:latest"
    kept = "registry.example.com/orgplane/instance:2"
    assert runnable_image(kept, settings) == kept
    assert not image_allowed("registry.example.com/orgplane/instance/../x", settings)
    ref = parse_image(f"localhost:5000/a/b:1@{DIGEST}")
    assert ref is not None
    assert (ref.repository, ref.tag, ref.digest) == (
        "localhost:5000/a/b",
        "1",
        DIGEST,
    )
