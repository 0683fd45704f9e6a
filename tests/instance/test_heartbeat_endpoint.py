"""The control plane's heartbeat endpoint, on SQLite and PostgreSQL: credentials, org mismatch,
replays, malformed bodies, floods, usage roll-up and write coalescing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import httpx
from litestar.testing import AsyncTestClient
from sqlmodel import select

from control_plane.db.models import AuditEvent, Instance, InstanceEvent, Org, UsageSample
from control_plane.instances.heartbeat import HeartbeatIn, issue_instance_credential
from control_plane.orgs.hierarchy import effective_limits
from orgplane_wire.contract import HEARTBEAT_PATH, HeartbeatBody, UsageCounters
from tests.support.api import assert_problem, direct_db
from tests.support.live import serve_control_plane

STARTED = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


async def make_instance_row(client: AsyncTestClient[Any], slug: str) -> tuple[str, str]:
    """An org with an Instance row and a fresh credential: (org id, credential)."""
    async with direct_db(client) as db:
        org = Org(slug=slug, name=slug, limits={"max_sessions": 7})
        db.add(org)
        await db.flush()
        db.add(Instance(org_id=org.id, provisioner="local"))
        await db.flush()
        credential = await issue_instance_credential(db, org_id=org.id)
        await db.commit()
        return org.id, credential


def body(org_id: str, seq: int, *, started: datetime = STARTED, **usage: int) -> dict[str, Any]:
    counters: UsageCounters = {
        "requests": 0,
        "sessions": 0,
        "messages": 0,
        "files": 0,
        "storage_bytes": 0,
        "active_users": 0,
    }
    counters.update(usage)  # type: ignore[typeddict-item]
    beat: HeartbeatBody = {
        "org_id": org_id,
        "instance_id": "inst-1",
        "version": "1.2.3",
        "started_at": started.isoformat(),
        "status": "ok",
        "seq": seq,
        "db_ok": True,
        "redis_ok": True,
        "usage": counters,
    }
    return dict(beat)


async def beat(client: AsyncTestClient[Any], credential: str, payload: Any) -> Any:
    return await client.post(
        HEARTBEAT_PATH, json=payload, headers={"Authorization": f"Bearer {credential}"}
    )


async def rows(client: AsyncTestClient[Any], org_id: str) -> tuple[Instance, list[UsageSample]]:
    async with direct_db(client) as db:
        instance = await db.get(Instance, org_id)
        samples = (await db.exec(select(UsageSample).where(UsageSample.org_id == org_id))).all()
        assert instance is not None
        return instance, list(samples)


def test_the_validated_body_has_exactly_the_contract_fields() -> None:
    assert set(HeartbeatIn.__struct_fields__) == set(HeartbeatBody.__annotations__)


async def test_a_heartbeat_is_recorded_and_answered_with_config_and_limits(
    client: AsyncTestClient[Any],
) -> None:
    org_id, credential = await make_instance_row(client, "hb-ok")
    answer = await beat(
        client,
        credential,
        body(org_id, 1, requests=10, sessions=2, messages=5, storage_bytes=300, active_users=2),
    )
    assert answer.status_code == 200, answer.text
    got = answer.json()
    assert got["accepted"] is True
    assert got["config_version"] == 1
    assert got["interval"] == 10.0
    async with direct_db(client) as db:
        org = await db.get(Org, org_id)
        assert org is not None
        assert got["limits"] == await effective_limits(db, org)
    assert got["limits"]["max_sessions"] == 7
    instance, samples = await rows(client, org_id)
    assert instance.last_heartbeat_seq == 1
    assert instance.version == "1.2.3"
    assert instance.health == "ok"
    assert instance.last_heartbeat_at is not None
    assert [
        (s.requests, s.sessions, s.messages, s.storage_bytes, s.active_users) for s in samples
    ] == [(10, 2, 5, 300, 2)]
    second = await beat(
        client,
        credential,
        body(org_id, 2, requests=25, sessions=2, messages=9, storage_bytes=200, active_users=1),
    )
    assert second.json()["accepted"] is True
    _, samples = await rows(client, org_id)
    assert [
        (s.requests, s.sessions, s.messages, s.storage_bytes, s.active_users) for s in samples
    ] == [(25, 2, 9, 200, 2)]


async def test_replays_and_stale_runs_are_ignored_and_a_restart_starts_a_new_run(
    client: AsyncTestClient[Any],
) -> None:
    org_id, credential = await make_instance_row(client, "hb-replay")
    assert (await beat(client, credential, body(org_id, 5, requests=10))).json()["accepted"]
    for seq in (5, 4, 1):
        replay = await beat(client, credential, body(org_id, seq, requests=99))
        assert replay.status_code == 200
        assert replay.json()["accepted"] is False
    instance, samples = await rows(client, org_id)
    assert instance.last_heartbeat_seq == 5
    assert samples[0].requests == 10
    later = STARTED + timedelta(minutes=5)
    restarted = await beat(client, credential, body(org_id, 1, started=later, requests=3))
    assert restarted.json()["accepted"] is True
    instance, samples = await rows(client, org_id)
    assert instance.last_heartbeat_seq == 1
    assert samples[0].requests == 13
    stale = await beat(client, credential, body(org_id, 50, started=STARTED, requests=500))
    assert stale.json()["accepted"] is False
    async with direct_db(client) as db:
        started = (
            await db.exec(
                select(InstanceEvent).where(
                    InstanceEvent.org_id == org_id, InstanceEvent.kind == "instance.started"
                )
            )
        ).all()
    assert len(started) == 2


async def test_a_quiet_heartbeat_is_accepted_without_a_write_and_its_seq_remembered(
    client: AsyncTestClient[Any],
) -> None:
    org_id, credential = await make_instance_row(client, "hb-quiet")
    await beat(client, credential, body(org_id, 1, requests=4))
    first, _ = await rows(client, org_id)
    quiet = await beat(client, credential, body(org_id, 2, requests=4))
    assert quiet.json()["accepted"] is True
    after, _ = await rows(client, org_id)
    assert after.last_heartbeat_at == first.last_heartbeat_at
    assert after.last_heartbeat_seq == 1
    again = await beat(client, credential, body(org_id, 2, requests=4))
    assert again.json()["accepted"] is False
    changed = await beat(client, credential, body(org_id, 3, requests=4, storage_bytes=1))
    assert changed.json()["accepted"] is True
    latest, _ = await rows(client, org_id)
    assert latest.last_heartbeat_seq == 3
    async with direct_db(client) as db:  # 1.5 intervals (15 s) pass without a change
        row = await db.get(Instance, org_id)
        assert row is not None
        assert row.last_heartbeat_at is not None
        row.last_heartbeat_at = row.last_heartbeat_at - timedelta(seconds=16)
        db.add(row)
        await db.commit()
    due = await beat(client, credential, body(org_id, 4, requests=4, storage_bytes=1))
    assert due.json()["accepted"] is True
    refreshed, _ = await rows(client, org_id)
    assert refreshed.last_heartbeat_seq == 4


async def test_a_heartbeat_for_another_org_is_refused_and_audited(
    client: AsyncTestClient[Any],
) -> None:
    org_a, credential_a = await make_instance_row(client, "hb-a")
    org_b, _ = await make_instance_row(client, "hb-b")
    refused = await beat(client, credential_a, body(org_b, 1, requests=1000))
    assert_problem(refused, 403, "org_mismatch")
    instance_b, samples_b = await rows(client, org_b)
    assert instance_b.last_heartbeat_at is None
    assert samples_b == []
    async with direct_db(client) as db:
        events = (
            await db.exec(
                select(AuditEvent).where(
                    AuditEvent.action == "instance.heartbeat", AuditEvent.outcome == "failure"
                )
            )
        ).all()
    assert [(e.org_id, e.detail.get("claimed_org")) for e in events] == [(org_a, org_b)]


async def test_bad_credentials_are_401(client: AsyncTestClient[Any]) -> None:
    org_id, credential = await make_instance_row(client, "hb-cred")
    other_id, other_credential = await make_instance_row(client, "hb-cred2")
    secret = credential.split(".", 1)[1]
    for wrong in (
        "",
        "opi_",
        credential + "x",
        credential[:-1],
        f"opi_{other_id}.{secret}",
        f"opi_{'f' * 32}.{secret}",
        "Bearer",
        "x" * 500,
        f"opi_{org_id}.short",
    ):
        answer = await beat(client, wrong, body(org_id, 1))
        assert_problem(answer, 401, "invalid_credential")
    no_header = await client.post(HEARTBEAT_PATH, json=body(org_id, 1))
    assert_problem(no_header, 401, "invalid_credential")
    assert (await beat(client, other_credential, body(other_id, 1))).status_code == 200


async def test_a_rotated_credential_replaces_the_old_one(client: AsyncTestClient[Any]) -> None:
    org_id, old = await make_instance_row(client, "hb-rotate")
    async with direct_db(client) as db:
        new = await issue_instance_credential(db, org_id=org_id)
        await db.commit()
        stored = await db.get(Instance, org_id)
        assert stored is not None
        assert new not in stored.credential_hash
        issued = (
            await db.exec(
                select(AuditEvent).where(
                    AuditEvent.action == "instance.credential_issued", AuditEvent.org_id == org_id
                )
            )
        ).all()
    assert len(issued) == 2
    assert all(new not in str(e.detail) for e in issued)
    assert_problem(await beat(client, old, body(org_id, 1)), 401, "invalid_credential")
    assert (await beat(client, new, body(org_id, 1))).status_code == 200


async def test_malformed_bodies_are_400(client: AsyncTestClient[Any]) -> None:
    org_id, credential = await make_instance_row(client, "hb-bad")
    good = body(org_id, 1)
    bad: list[Any] = [
        {**good, "seq": 0},
        {**good, "seq": 1.5},
        {**good, "status": "great"},
        {**good, "extra": 1},
        {**good, "started_at": "yesterday"},
        {**good, "usage": {"requests": -1}},
        {**good, "usage": {"bitcoins": 1}},
        {**good, "org_id": "../../x"},
        {k: v for k, v in good.items() if k != "instance_id"},
        [good],
        "heartbeat",
    ]
    for payload in bad:
        assert_problem(await beat(client, credential, payload), 400)
    raw = await client.post(
        HEARTBEAT_PATH,
        content=b"{not json",
        headers={"Authorization": f"Bearer {credential}", "content-type": "application/json"},
    )
    assert_problem(raw, 400)
    instance, _ = await rows(client, org_id)
    assert instance.last_heartbeat_at is None


async def test_a_flood_is_429_per_instance(client: AsyncTestClient[Any]) -> None:
    org_id, credential = await make_instance_row(client, "hb-flood")
    other_id, other_credential = await make_instance_row(client, "hb-calm")
    # Fixed one-minute windows: a window may end mid-test, so allow up to two windows' worth.
    statuses, flood = [], None
    for seq in range(1, 130):
        answer = await beat(client, credential, body(org_id, seq))
        if answer.status_code == 429:
            flood = answer
            break
        statuses.append(answer.status_code)
    assert flood is not None
    assert 60 <= len(statuses) <= 120
    assert set(statuses) == {200}
    assert_problem(flood, 429, "rate_limited")
    assert int(flood.headers["retry-after"]) >= 1
    assert (await beat(client, other_credential, body(other_id, 1))).status_code == 200


async def test_bad_credentials_never_use_up_an_orgs_allowance(
    make_settings: Any, unused_tcp_port: int
) -> None:
    """Failed on the old code: 100 bad credentials naming the org, sent from another address
    (127.0.0.2), counted against the org's 60 attempts a minute (401 sixty times, then 429 for
    the org, whose real instance would have been refused too) instead of against the sender."""
    settings = make_settings(ORGPLANE_PORT=str(unused_tcp_port))
    async with serve_control_plane(settings, unused_tcp_port) as app:
        org_id, credential = await make_instance_row(SimpleNamespace(app=app), "hb-target")
        forged = credential.rsplit(".", 1)[0] + ".not-the-secret-0123456789"
        base = f"http://127.0.0.1:{unused_tcp_port}"
        attacker = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
        async with (
            httpx.AsyncClient(base_url=base, transport=attacker) as bad,
            httpx.AsyncClient(base_url=base) as good,
        ):
            statuses = []
            for _ in range(100):
                answer = await bad.post(
                    HEARTBEAT_PATH, json={}, headers={"Authorization": f"Bearer {forged}"}
                )
                statuses.append(answer.status_code)
            assert statuses[:30] == [401] * 30
            assert set(statuses[30:]) == {429}  # the sender is limited, not the org
            for seq in range(1, 11):
                answer = await good.post(
                    HEARTBEAT_PATH,
                    json=body(org_id, seq),
                    headers={"Authorization": f"Bearer {credential}"},
                )
                assert answer.status_code == 200, answer.text
