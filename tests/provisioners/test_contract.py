"""The provisioner contract (provisioners/base.py), run unchanged against every backend:
local processes, the real Docker engine, Kubernetes on kmock's emulator, and Kubernetes on a
real one-node cluster (API server, controllers, scheduler, kubelet: tests/support/kubecluster.py).

What it proves: apply is idempotent (twice = one instance, same object); status is None before
anything exists and after removal; removal is idempotent and keep_data leaves data only; list
shows this deployment's orgs only and another deployment's objects are never touched; a new
provisioner object (a control-plane restart) finds and adopts what the old one made; a changed
spec still leaves one instance; adopting a spec (after a warm-pool claim) leaves the running
instance alone; stop keeps the instance and apply starts it again; and where instances really
run (local, Docker, the real cluster) the instance answers /healthz once the backend says it
runs (at the reported endpoint; on the cluster at its pod's address, as the Service's name
resolves only inside the cluster).
"""

from __future__ import annotations

import dataclasses

import httpx
import pytest

from orgplane_wire.contract import Env
from provisioners.errors import PermanentProvisionerError
from tests.provisioners.harness import Harness, wait_for_state
from tests.support.wait import WaitTimeout, eventually

pytestmark = pytest.mark.usefixtures("cleanup_provisioners")

LIVE = {"creating", "starting", "running"}


async def answer_within(client: httpx.AsyncClient, url: str, *, seconds: float) -> httpx.Response:
    """The first answer to ``GET url``, retried while nothing listens (bounded)."""
    error: httpx.TransportError | None = None

    async def answer() -> httpx.Response | None:
        nonlocal error
        try:
            return await client.get(url)
        except httpx.TransportError as exc:
            error = exc
            return None

    try:
        return await eventually(answer, what=f"an answer from {url}", timeout=seconds, interval=0.1)
    except WaitTimeout as exc:
        raise WaitTimeout(f"{exc}; last error: {error!r}") from None


async def test_apply_twice_is_one_instance(harness: Harness) -> None:
    provisioner = harness.provisioner()
    spec = harness.spec()
    first = await provisioner.apply(spec=spec)
    second = await provisioner.apply(spec=spec)

    assert first.state in LIVE
    assert second.state in LIVE
    assert second.handle == first.handle or (
        harness.name == "local" and (second.handle["pid"] == first.handle["pid"])
    )
    assert await harness.count_instances(spec.org_id) == 1
    assert [s.org_id for s in await provisioner.list()] == [spec.org_id]


async def test_status_is_none_before_and_after_remove(harness: Harness) -> None:
    provisioner = harness.provisioner()
    spec = harness.spec()
    assert await provisioner.status(org_id=spec.org_id) is None

    await provisioner.apply(spec=spec)
    status = await provisioner.status(org_id=spec.org_id)
    assert status is not None
    assert status.org_id == spec.org_id
    assert status.state in LIVE
    assert status.instance_id == spec.instance_id
    assert status.labels["orgplane.org-id"] == spec.org_id

    await provisioner.remove(org_id=spec.org_id, keep_data=False)
    assert await provisioner.status(org_id=spec.org_id) is None
    assert await harness.count_instances(spec.org_id) == 0
    assert await provisioner.list() == []


async def test_remove_is_idempotent(harness: Harness) -> None:
    provisioner = harness.provisioner()
    spec = harness.spec()
    await provisioner.remove(org_id=spec.org_id, keep_data=False)  # nothing there: fine
    await provisioner.apply(spec=spec)
    await provisioner.remove(org_id=spec.org_id, keep_data=False)
    await provisioner.remove(org_id=spec.org_id, keep_data=False)
    assert await provisioner.status(org_id=spec.org_id) is None


async def test_keep_data_leaves_only_data_and_apply_brings_it_back(harness: Harness) -> None:
    provisioner = harness.provisioner()
    spec = harness.spec()
    await provisioner.apply(spec=spec)
    await provisioner.remove(org_id=spec.org_id, keep_data=True)

    kept = await provisioner.status(org_id=spec.org_id)
    assert kept is not None
    assert kept.state == "absent"
    assert await harness.count_instances(spec.org_id) == 0
    assert [(s.org_id, s.state) for s in await provisioner.list()] == [(spec.org_id, "absent")]

    back = await provisioner.apply(spec=spec)
    assert back.state in LIVE
    await provisioner.remove(org_id=spec.org_id, keep_data=False)
    assert await provisioner.status(org_id=spec.org_id) is None


async def test_list_shows_ours_only_and_leaves_other_deployments_alone(harness: Harness) -> None:
    ours, theirs = (
        harness.provisioner(),
        harness.provisioner(deployment_id=f"{harness.options.deployment_id}-other"),
    )
    our_spec, their_spec = harness.spec(slug="ours"), harness.spec(slug="theirs")
    await ours.apply(spec=our_spec)
    await theirs.apply(spec=their_spec)

    assert [s.org_id for s in await ours.list()] == [our_spec.org_id]
    assert [s.org_id for s in await theirs.list()] == [their_spec.org_id]
    assert await ours.status(org_id=their_spec.org_id) is None

    await ours.remove(org_id=their_spec.org_id, keep_data=False)  # not ours: a no-op
    assert await harness.count_instances(their_spec.org_id) == 1
    assert (await theirs.status(org_id=their_spec.org_id)) is not None


async def test_a_new_provisioner_adopts_what_the_old_one_made(harness: Harness) -> None:
    spec = harness.spec()
    before = await harness.provisioner().apply(spec=spec)

    restarted = harness.provisioner()  # as after a control-plane restart
    found = await restarted.status(org_id=spec.org_id)
    assert found is not None
    assert found.handle == before.handle
    again = await restarted.apply(spec=spec)
    assert again.handle == before.handle  # adopted, not made again
    assert await harness.count_instances(spec.org_id) == 1


async def test_a_changed_spec_still_means_one_instance(harness: Harness) -> None:
    provisioner = harness.provisioner()
    spec = harness.spec()
    first = await provisioner.apply(spec=spec)
    changed = dataclasses.replace(spec, env={**spec.env, Env.HEARTBEAT_INTERVAL: "20"})

    second = await provisioner.apply(spec=changed)
    assert second.fingerprint != first.fingerprint
    assert await harness.count_instances(spec.org_id) == 1
    assert len(await provisioner.list()) == 1


async def test_adopting_a_new_spec_leaves_the_running_instance_alone(harness: Harness) -> None:
    """What the reconciler does after a warm-pool spare took its org: the instance runs on."""
    provisioner = harness.provisioner()
    spec = harness.spec()
    first = await provisioner.apply(spec=spec)
    org = dataclasses.replace(spec, slug="claimed", hostnames=("claimed.orgs.example.com",))

    await provisioner.adopt(spec=org)

    after = await provisioner.status(org_id=spec.org_id)
    assert after is not None
    assert after.handle == first.handle
    assert after.endpoint == first.endpoint
    assert await harness.count_instances(spec.org_id) == 1


async def test_stop_keeps_the_instance_and_apply_starts_it(harness: Harness) -> None:
    provisioner = harness.provisioner()
    spec = harness.spec()
    await provisioner.apply(spec=spec)
    await provisioner.stop(org_id=spec.org_id)

    stopped = await provisioner.status(org_id=spec.org_id)
    assert stopped is not None
    assert stopped.state == "stopped"
    restarted = await provisioner.apply(spec=spec)
    assert restarted.state in LIVE


async def test_the_instance_runs_and_answers_at_its_endpoint(harness: Harness) -> None:
    provisioner = harness.provisioner()
    spec = harness.spec()
    applied = await provisioner.apply(spec=spec)
    if not harness.runs_instances:
        await harness.mark_ready(applied)

    running = await wait_for_state(provisioner, spec.org_id, {"running"})
    assert running.endpoint.startswith("http://")
    if harness.runs_instances:
        # "running" is the backend's word that the instance runs (a Docker container without
        # a health check runs before its server listens); it answers soon after, or never.
        base = await harness.url(running)
        async with httpx.AsyncClient(timeout=5, trust_env=False) as client:
            healthz = await answer_within(client, f"{base}/healthz", seconds=30)
            readyz = await client.get(f"{base}/readyz")
        assert healthz.status_code == 200
        assert readyz.status_code == 200


async def test_an_invalid_org_id_is_refused(harness: Harness) -> None:
    provisioner = harness.provisioner()
    with pytest.raises(PermanentProvisionerError):
        await provisioner.status(org_id="../etc")
    with pytest.raises(PermanentProvisionerError):
        await provisioner.remove(org_id="a b", keep_data=False)
