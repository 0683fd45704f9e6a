"""Two reconcilers on one PostgreSQL database never provision one org twice."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from control_plane.db.models import Org
from control_plane.reconciler.loop import Reconciler
from control_plane.reconciler.reconcile import Context
from control_plane.reconciler.spec import provisioner_options
from control_plane.runtime import Runtime
from provisioners.base import InstanceSpec, InstanceStatus
from provisioners.local import LocalProvisioner


class CountingProvisioner(LocalProvisioner):
    """The real local backend, counting every apply (and slowing it, to widen the race)."""

    applies: Counter[str]

    async def apply(self, *, spec: InstanceSpec) -> InstanceStatus:
        self.applies[spec.org_id] += 1
        await asyncio.sleep(0.2)  # time passing is the point: a slow apply widens the race
        return await super().apply(spec=spec)


@pytest.fixture
def db_backend() -> str:
    return "postgres"


async def test_two_replicas_one_instance_per_org(make_settings: Any, tmp_path: Path) -> None:
    settings = make_settings(
        ORGPLANE_DEPLOYMENT_ID=f"t-{uuid.uuid4().hex[:8]}", ORGPLANE_MAX_CONCURRENT_PROVISIONING="8"
    )
    applies: Counter[str] = Counter()
    replicas = []
    for _ in range(2):
        runtime = Runtime.build(settings)
        provisioner = CountingProvisioner(options=provisioner_options(runtime))
        provisioner.applies = applies
        replicas.append(Reconciler(Context(runtime, provisioner)))
    async with replicas[0].ctx.runtime.sessions() as db:
        orgs = [Org(slug=f"lease-{i}", name=f"Lease {i}") for i in range(6)]
        db.add_all(orgs)
        await db.commit()
    try:
        for _ in range(3):
            await asyncio.gather(*(r.run_pass() for r in replicas))
        assert sorted(applies) == sorted(o.id for o in orgs)
        assert set(applies.values()) == {1}, applies
        listed = await replicas[0].ctx.provisioner.list()
        assert Counter(s.org_id for s in listed) == Counter({o.id: 1 for o in orgs})
    finally:
        for status in await replicas[0].ctx.provisioner.list():
            await replicas[0].ctx.provisioner.remove(org_id=status.org_id, keep_data=False)
        for r in replicas:
            await r.ctx.runtime.close()
