"""Tenant-boundary attack classes (issue 21), each a seeded plan (``attacks.py``) run at the
proof scale's ``attack_rounds``: tenant-chosen images, staff paths without approval,
pending-domain squatting, archive bombs against quotas, and revocation reaching the instance.

Every class counts what it tried and what got through; got through must be 0. The control
plane runs in process on SQLite (these are authorization and bounds checks, not load); the
squatting class answers DNS from a real server on 127.0.0.1, the archive class restores into
an in-process org instance, and the revocation class follows the org's channel on the real
Redis with the org's own ACL user, as an instance does.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import tarfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis
from sqlmodel import col, func, select

from control_plane.db.models import AuditEvent, Domain, Instance, Membership, Org
from control_plane.redis_acl import delete_org_redis_user, ensure_org_redis_user
from org_instance.app import create_app
from org_instance.backup.restore import STAGED
from org_instance.revocations import Revocations
from orgplane_wire.backup.manifest import RATIO_FLOOR
from orgplane_wire.backup.protocol import (
    CONTROL_PLANE_SUBJECT,
    RESTORE_MAX_BYTES_ENV,
    RESTORE_PATH,
    SCOPE_RESTORE,
)
from orgplane_wire.contract import revocations_key
from tests.backups.test_archive import archive_of, hostile, make_data, read_data, zeros_bomb
from tests.instance.helpers import FakeControlPlane, Signer, bearer, instance_config
from tests.proof.attacks import (
    ARCHIVE_KINDS,
    Attempt,
    plan_archives,
    plan_images,
    plan_revocations,
    plan_squats,
    plan_staff,
)
from tests.proof.conftest import Scale
from tests.routing.conftest import extra_settings, settings  # noqa: F401  (fixtures: DNS)
from tests.routing.helpers import ZoneResolver, add_org
from tests.support.api import add_user, direct_db, login
from tests.support.services import REDIS_URL, need, redis_available
from tests.support.tokens import exchange, make_org
from tests.support.wait import WaitTimeout, eventually

pytestmark = pytest.mark.slow

#: How long a revocation may take to reach the follower before it counts as got through
#: (generous: the 2 s target is measured in benchmarks/bench_revocation.py).
REVOCATION_BOUND = 10.0


@dataclass
class Tally:
    """What one class tried, and the attempts that got through."""

    name: str
    tried: int = 0
    through: list[str] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)

    def count(self, status: int) -> None:
        self.tried += 1
        self.statuses[status] = self.statuses.get(status, 0) + 1

    def check(self, seed: int) -> None:
        figures = f"{self.name}: seed={seed} tried={self.tried} statuses={self.statuses}"
        print(figures)
        assert not self.through, f"{figures}\ngot through: {self.through[:20]}"


@pytest.fixture
def db_backend() -> str:
    """Authorization and bounds: SQLite is enough (the PostgreSQL paths are in tests/routing
    and tests/api)."""
    return "sqlite"


def fill(value: Any, names: dict[str, str]) -> Any:
    """``value`` with every ``{name}`` placeholder in its strings replaced."""
    if isinstance(value, str):
        for key, text in names.items():
            value = value.replace("{" + key + "}", text)
        return value
    if isinstance(value, dict):
        return {k: fill(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, names) for v in value]
    return value


async def _count(client: AsyncTestClient[Any], model: Any, *where: Any) -> int:
    async with direct_db(client) as db:
        return int((await db.exec(select(func.count()).select_from(model).where(*where))).one())


async def test_tenants_never_choose_what_runs(
    client: AsyncTestClient[Any], scale: Scale, seed: int
) -> None:
    """An org's owner and admin try redeploys, images on any action, and spec fields (image,
    labels, env, resources, command, privileged, volumes, network mode) on an org update or a
    new child org: every attempt refused, every instance-action attempt audited as denied, the
    instance's image and the org's generation unchanged."""
    owner = await add_user(client, "owner@tenant.test")
    admin = await add_user(client, "admin@tenant.test")
    org_id = await add_org(
        client, "tenant", members={owner: "owner", admin: "admin"}, endpoint="http://127.0.0.1:9"
    )
    who = {n: await login(client, f"{n}@tenant.test") for n in ("owner", "admin")}
    async with direct_db(client) as db:
        instance, org = await db.get(Instance, org_id), await db.get(Org, org_id)
        assert instance is not None
        assert org is not None
        before = (instance.image, org.generation)
    tally, plan = Tally("tenant-chosen images"), plan_images(seed, scale.attack_rounds)
    for attempt in plan:
        answer = await client.request(
            attempt.method,
            fill(attempt.path, {"org": org_id}),
            headers=who[attempt.actor],
            json=fill(attempt.body, {"org": org_id}),
        )
        tally.count(answer.status_code)
        if answer.status_code < 400 or answer.status_code >= 500:
            tally.through.append(f"#{attempt.index} {attempt.body} -> {answer.status_code}")
    async with direct_db(client) as db:
        instance, org = await db.get(Instance, org_id), await db.get(Org, org_id)
        assert instance is not None
        assert org is not None
        if (instance.image, org.generation) != before:
            tally.through.append(f"instance changed: {before} -> {instance.image}")
        denied = (
            await db.exec(
                select(func.count())
                .select_from(AuditEvent)
                .where(
                    col(AuditEvent.org_id) == org_id,
                    col(AuditEvent.action).startswith("instance."),
                    col(AuditEvent.outcome) == "denied",
                )
            )
        ).one()
    assert denied == sum(a.audited for a in plan), "every instance-action attempt is audited"
    assert await _count(client, Org, col(Org.parent_id) == org_id) == 0
    tally.check(seed)


async def test_staff_without_approval_get_nothing(
    client: AsyncTestClient[Any], scale: Scale, seed: int
) -> None:
    """A platform admin who is no member of an org requiring approval tries every staff path
    (token exchange, adding or inviting themselves, accepting an owner's invite, member
    changes, export, backups, restore, import, domain changes, renaming): all refused, and the
    org's members, invites, domains and name are as before."""
    staff_id = await add_user(client, "staff@orgplane.test", admin=True)
    owner_id = await add_user(client, "owner@acme.test")
    member_id = await add_user(client, "member@acme.test")
    outsider = await add_user(client, "outsider@else.test")
    org_id = await make_org(
        client,
        "acme",
        members={owner_id: "owner", member_id: "member"},
        require_access_approval=True,
        plan="team",  # it holds a custom domain
    )
    owner, staff = (
        await login(client, "owner@acme.test"),
        await login(client, "staff@orgplane.test"),
    )
    base = f"/api/v1/orgs/{org_id}"
    invite = await client.post(
        f"{base}/invites", headers=owner, json={"email": "staff@orgplane.test", "role": "member"}
    )
    domain = await client.post(f"{base}/domains", headers=owner, json={"hostname": "a.example.org"})
    assert (invite.status_code, domain.status_code) == (201, 201)
    names = {
        "org": org_id, "slug": "acme", "staff": staff_id, "member": member_id,
        "outsider": outsider, "staff_email": "staff@orgplane.test",
        "invite": invite.json()["token"], "domain": domain.json()["id"],
    }  # fmt: skip
    access = staff["Authorization"].removeprefix("Bearer ")
    members_before = await _count(client, Membership, col(Membership.org_id) == org_id)
    tally = Tally("staff paths without approval")
    for attempt in plan_staff(seed, scale.attack_rounds):
        names["index"] = str(attempt.index)
        path = fill(attempt.path, names)
        if attempt.method == "EXCHANGE":
            answer = await exchange(client, access, audience=f"org:{org_id}")
        elif attempt.method == "IMPORT":
            answer = await client.post(path, headers=staff, content=b"\x1f\x8b not an archive")
        else:
            body = fill(attempt.body, names)
            answer = await client.request(attempt.method, path, headers=staff, json=body)
        tally.count(answer.status_code)
        if answer.status_code < 400 or answer.status_code >= 500:
            tally.through.append(
                f"#{attempt.index} {attempt.method} {path} -> {answer.status_code}"
            )
    assert await _count(client, Membership, col(Membership.org_id) == org_id) == members_before
    assert await _count(client, Domain, col(Domain.org_id) == org_id) == 1  # the owner's
    async with direct_db(client) as db:
        org = await db.get(Org, org_id)
        assert org is not None
        assert org.name == "Acme"
    tally.check(seed)


async def test_pending_claims_never_keep_a_domain_from_its_owner(
    client: AsyncTestClient[Any], dns_zone: tuple[ZoneResolver, int], scale: Scale, seed: int
) -> None:
    """For each hostname, 1-3 squatting orgs claim it (in any spelling) before the org that
    controls its DNS: the owner's claim is accepted anyway, no squatter's verification
    succeeds, the owner's does, and the squatters' claims after it are refused."""
    zone, _ = dns_zone
    squatters = []
    for i in range(3):
        user = await add_user(client, f"squatter{i}@evil.test")
        org_id = await add_org(client, f"squat{i}", members={user: "owner"})
        squatters.append((org_id, await login(client, f"squatter{i}@evil.test")))
    owner_user = await add_user(client, "owner@shop.test")
    owner = await login(client, "owner@shop.test")
    owner_org = ""
    tally = Tally("pending-domain squatting")

    async def send(method: str, url: str, headers: dict[str, str], body: Any = None) -> Any:
        answer = await client.request(method, url, headers=headers, json=body)
        tally.count(answer.status_code)
        return answer

    for squat in plan_squats(seed, scale.attack_rounds):
        if squat.index % 40 == 0:  # an org holds at most 50 custom domains
            owner_org = await add_org(client, f"shop{squat.index}", members={owner_user: "owner"})
        mine = f"/api/v1/orgs/{owner_org}/domains"
        claims = []
        for (org_id, headers), spelling in zip(squatters, squat.spellings, strict=False):
            url = f"/api/v1/orgs/{org_id}/domains"
            claims.append(
                (org_id, headers, await send("POST", url, headers, {"hostname": spelling}))
            )
        own = await send("POST", mine, owner, {"hostname": squat.hostname})
        if own.status_code != 201:
            tally.through.append(f"#{squat.index} owner's claim -> {own.status_code}")
            continue
        zone.records[f"_orgplane-challenge.{squat.hostname}"] = [
            own.json()["challenge"]["record_value"]
        ]
        for org_id, headers, claimed in claims:
            if claimed.status_code != 201:
                continue
            url = f"/api/v1/orgs/{org_id}/domains/{claimed.json()['id']}/verify"
            tried = await send("POST", url, headers)
            if tried.status_code == 200 and tried.json()["domain"]["verified"]:
                tally.through.append(f"#{squat.index} squatter {org_id} verified")
        won = await send("POST", f"{mine}/{own.json()['id']}/verify", owner)
        if won.status_code != 200 or not won.json()["domain"]["verified"]:
            tally.through.append(f"#{squat.index} owner's verification -> {won.text[:200]}")
        for org_id, headers, _ in claims:
            url = f"/api/v1/orgs/{org_id}/domains"
            again = await send("POST", url, headers, {"hostname": squat.hostname})
            if again.status_code != 409:
                tally.through.append(f"#{squat.index} squatter re-claim -> {again.status_code}")
    async with direct_db(client) as db:
        left = (await db.exec(select(Domain.org_id).where(col(Domain.kind) == "custom"))).all()
    assert not {o for o, _ in squatters} & set(left), "no squatter keeps a claim"
    tally.check(seed)


QUOTA = 2000
RESTORE_LIMIT = RATIO_FLOOR + 8 * 1024 * 1024


def hostile_archives(tmp: Path) -> dict[str, bytes]:
    """One archive of each kind in ARCHIVE_KINDS, against QUOTA and RESTORE_LIMIT."""
    source = tmp / "source"
    make_data(source, title="hostile", files={"f1": b"one" * 1000, "f2": b"two"})
    conn = sqlite3.connect(source / "instance.db", isolation_level=None)
    conn.execute("UPDATE files SET size = 1")  # rows understate the files
    conn.close()
    archive_of(source, tmp / "over.tar.gz")
    with tarfile.open(tmp / "over.tar.gz") as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]  # type: ignore[union-attr]
    manifest = json.loads(members[0][1])
    # The tar header says 3 bytes where the manifest says 3000 (the manifest is authoritative).
    small = [(m, b) for m, b in members[1:] if m.name != "data/files/f1"]
    header = tarfile.TarInfo("data/files/f1")
    header.size = 3
    extra = tarfile.TarInfo("data/files/smuggled")
    extra.size = 4
    raw = json.dumps(manifest).encode()
    bomb = zeros_bomb(tmp / "bomb.tar.gz", RATIO_FLOOR + 4 * 1024 * 1024)
    small_header = hostile(tmp / "small.tar.gz", [(header, b"one"), *small], raw)
    smuggled = hostile(tmp / "extra.tar.gz", [(extra, b"evil"), *members[1:]], raw)
    return {
        "over_quota": (tmp / "over.tar.gz").read_bytes(),
        "ratio_bomb": bomb.read_bytes(),
        "declared_small": small_header.read_bytes(),
        "extra_member": smuggled.read_bytes(),
        "oversize": b"\x1f\x8b" + bytes(RESTORE_LIMIT),
    }


@pytest.fixture
async def small_instance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[AsyncTestClient[Any], Signer, Path]]:
    """An in-process org instance with data, a 2,000-byte storage quota and a restore limit."""
    monkeypatch.setenv(RESTORE_MAX_BYTES_ENV, str(RESTORE_LIMIT))
    data_dir = tmp_path / "instance"
    make_data(data_dir, title="kept", files={"f9": b"nine"})
    signer = Signer()
    config = instance_config(data_dir, limits={"max_storage_bytes": QUOTA})
    app = create_app(config, http=FakeControlPlane(signers=[signer]).client())
    async with AsyncTestClient(app, base_url="http://acme.orgplane.test") as client:
        yield client, signer, data_dir


async def test_hostile_archives_never_get_past_the_quota_or_the_bounds(
    small_instance: tuple[AsyncTestClient[Any], Signer, Path],
    tmp_path: Path,
    scale: Scale,
    seed: int,
) -> None:
    """Restores of archives over the storage quota (with rows that understate the files),
    compression bombs, headers that understate an entry, smuggled members and oversize
    uploads: each refused with its 413/422 code, the org's data and storage use unchanged."""
    instance, signer, data_dir = small_instance
    runtime = instance.app.state.instance
    archives = hostile_archives(tmp_path / "hostile")
    token = signer.token(runtime.config.org_id, sub=CONTROL_PLANE_SUBJECT, scope=SCOPE_RESTORE)
    tally = Tally("archive bombs against quotas")
    attempt: Attempt
    for attempt in plan_archives(seed, scale.attack_rounds):
        status, code = ARCHIVE_KINDS[attempt.body]
        body = archives[attempt.body]
        answer = await instance.post(RESTORE_PATH, headers=bearer(token), content=body)
        tally.count(answer.status_code)
        got = (answer.status_code, answer.json().get("code"))
        if got != (status, code):
            tally.through.append(f"#{attempt.index} {attempt.body} -> {got}")
    if read_data(data_dir) != ("kept", {"f9": b"nine"}) or (data_dir / STAGED).exists():
        tally.through.append("the org's data changed")
    assert runtime.usage.storage_bytes == 4
    tally.check(seed)


@pytest.mark.redis
@pytest.mark.parametrize("extra_settings", [{"ORGPLANE_REDIS_URL": REDIS_URL}])
async def test_revocations_reach_the_instance(
    client: AsyncTestClient[Any], scale: Scale, seed: int
) -> None:
    """A member holds an org token the instance accepts; the owner removes them, they log
    out, or staff suspend the org: the instance's follower of the org's channel (on the org's
    own Redis ACL user) refuses that token. The proof asserts the refusal (within a generous
    bound); the time is measured in benchmarks/bench_revocation.py."""
    need("Redis", redis_available())
    admin = Redis.from_url(REDIS_URL)
    await add_user(client, "root@orgplane.test", admin=True)
    root = await login(client, "root@orgplane.test")
    tally = Tally("revocation at the instance")
    try:
        for attempt in plan_revocations(seed, scale.attack_rounds):
            tag = uuid.uuid4().hex[:8]
            owner = await add_user(client, f"owner-{tag}@rev.test")
            member = await add_user(client, f"member-{tag}@rev.test")
            org_id = await make_org(
                client, f"rev-{tag}", members={owner: "owner", member: "member"}
            )
            url = await ensure_org_redis_user(admin, org_id=org_id)
            follower = Revocations(org_id=org_id, redis=Redis.from_url(url))
            task = asyncio.create_task(follower.run())
            try:
                await eventually(lambda f=follower: f.live, what="follower live")
                as_member = await login(client, f"member-{tag}@rev.test")
                access = as_member["Authorization"].removeprefix("Bearer ")
                swapped = await exchange(client, access, audience=f"org:{org_id}")
                claims = jwt.decode(
                    swapped.json()["access_token"], options={"verify_signature": False}
                )
                assert not follower.refuses(claims)
                if attempt.path == "member_removed":
                    as_owner = await login(client, f"owner-{tag}@rev.test")
                    gone = f"/api/v1/orgs/{org_id}/members/{member}"
                    answer = await client.delete(gone, headers=as_owner)
                elif attempt.path == "logout":
                    answer = await client.post("/api/v1/auth/logout", headers=as_member, json={})
                else:
                    answer = await client.post(f"/api/v1/orgs/{org_id}/suspend", headers=root)
                tally.count(answer.status_code)
                assert answer.status_code < 300, answer.text
                try:
                    await eventually(
                        lambda c=claims, f=follower: f.refuses(c),
                        what="refused",
                        timeout=REVOCATION_BOUND,
                    )
                except WaitTimeout:
                    tally.through.append(f"#{attempt.index} {attempt.path}: token still accepted")
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                await follower.redis.aclose()
                await delete_org_redis_user(admin, org_id=org_id)
                await admin.delete(revocations_key(org_id))
    finally:
        await admin.aclose()
    tally.check(seed)
