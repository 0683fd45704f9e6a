"""What a heartbeat costs the database: an unchanged one reads one row and writes nothing, a
changed or due one writes, and the row stays fresh for the reconciler (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace
from typing import Any

from litestar.testing import AsyncTestClient

from control_plane.db.models import Instance, utcnow
from control_plane.instances.heartbeat import WRITE_EVERY_INTERVALS
from control_plane.reconciler.reconcile import heartbeat_fresh
from tests.instance.test_heartbeat_endpoint import beat, body, make_instance_row, rows
from tests.scale.statements import of_kind, statements_of
from tests.support.api import direct_db, runtime_of

QUIET_BEATS = 10


async def test_unchanged_heartbeats_read_one_row_each_and_write_nothing(
    client: AsyncTestClient[Any],
) -> None:
    org_id, credential = await make_instance_row(client, "hb-statements")
    assert (await beat(client, credential, body(org_id, 1, requests=3))).json()["accepted"]
    written, _ = await rows(client, org_id)
    with statements_of(client) as seen:
        for seq in range(2, 2 + QUIET_BEATS):
            answer = await beat(client, credential, body(org_id, seq, requests=3))
            assert answer.json()["accepted"] is True
    assert of_kind(seen, "UPDATE") == []
    assert of_kind(seen, "INSERT") == []
    # One indexed read per heartbeat: the instance and its org, by primary key.
    assert len(of_kind(seen, "SELECT", "instance")) == QUIET_BEATS
    assert len(seen) == QUIET_BEATS
    quiet, _ = await rows(client, org_id)
    assert quiet.last_heartbeat_at == written.last_heartbeat_at
    with statements_of(client) as seen:
        moved = await beat(client, credential, body(org_id, 2 + QUIET_BEATS, requests=5))
        assert moved.json()["accepted"] is True
    assert len(of_kind(seen, "UPDATE", "instance")) == 1
    assert len(of_kind(seen, "INSERT", "usagesample")) == 1
    after, samples = await rows(client, org_id)
    assert after.last_heartbeat_seq == 2 + QUIET_BEATS
    assert samples[0].requests == 5


async def test_a_quiet_instance_is_written_before_the_reconciler_would_call_it_stale(
    client: AsyncTestClient[Any],
) -> None:
    runtime = runtime_of(client)
    interval = runtime.settings.provisioning.heartbeat_interval
    ctx: Any = SimpleNamespace(runtime=runtime)
    # The longest gap between row writes (instances jitter their interval by up to 10%) stays
    # inside the reconciler's three-interval freshness window.
    assert (WRITE_EVERY_INTERVALS + 1.1) * interval < 3 * interval
    org_id, credential = await make_instance_row(client, "hb-fresh")
    await beat(client, credential, body(org_id, 1))
    for seq, age in ((2, WRITE_EVERY_INTERVALS * interval - 1), (3, 2.9 * interval)):
        async with direct_db(client) as db:
            row = await db.get(Instance, org_id)
            assert row is not None
            row.last_heartbeat_at = utcnow() - timedelta(seconds=age)
            db.add(row)
            await db.commit()
        with statements_of(client) as seen:
            assert (await beat(client, credential, body(org_id, seq))).json()["accepted"]
        instance, _ = await rows(client, org_id)
        assert heartbeat_fresh(ctx, instance, utcnow())
        wrote = bool(of_kind(seen, "UPDATE", "instance"))
        assert wrote is (age >= WRITE_EVERY_INTERVALS * interval), (seq, age)
