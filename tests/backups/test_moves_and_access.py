"""Moving data between orgs (restore elsewhere, export/import) and who may do what."""

from __future__ import annotations

from typing import Any

from sqlmodel import col, select

from control_plane.backups.instance_api import internal_token
from control_plane.db.models import Org
from orgplane_wire.backup.protocol import BACKUP_PATH, RESTORE_PATH, SCOPE_BACKUP
from tests.backups.live import Live, instance_client, new_org, read_data, set_limits, write_data
from tests.reconciler.test_lifecycle_local import org_token
from tests.support.api import assert_problem
from tests.support.wait import eventually

DATA = (["moving"], {"moving.bin": b"tenant data " * 300})


async def _login(live: Live, email: str) -> dict[str, str]:
    from control_plane.users.service import create_user

    async with live.app.state.runtime.sessions() as db:
        await create_user(db, email=email, password="a long password")
        await db.commit()
    answer = await live.http.post(
        "/api/v1/auth/login", json={"email": email, "password": "a long password"}
    )
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


async def _add(live: Live, slug: str, email: str, role: str) -> None:
    added = await live.http.post(
        f"/api/v1/orgs/{slug}/members", headers=live.admin, json={"email": email, "role": role}
    )
    assert added.status_code == 201, added.text


async def test_restore_into_another_org_and_export_import(live: Live) -> None:
    await new_org(live, "alpha")
    await new_org(live, "beta")
    await write_data(live, "alpha", title="moving", file_body=b"tenant data " * 300)
    await write_data(live, "beta", title="beta-own", file_body=b"b")
    backup = (await live.http.post("/api/v1/orgs/alpha/backups", headers=live.admin)).json()

    wrong = await live.http.post(
        "/api/v1/orgs/beta/restore",
        headers=live.admin,
        json={"backup_id": backup["id"], "confirm": "alpha"},  # the source's slug, not the target's
    )
    assert_problem(wrong, 422, "confirmation_required")
    moved = await live.http.post(
        "/api/v1/orgs/beta/restore",
        headers=live.admin,
        json={"backup_id": backup["id"], "confirm": "beta"},
    )
    assert moved.status_code == 200, moved.text
    assert await read_data(live, "beta") == DATA
    assert await read_data(live, "alpha") == DATA

    # Export alpha, import into a new org: the same data, the archive kept as an import.
    exported = await live.http.get("/api/v1/orgs/alpha/export", headers=live.admin)
    assert exported.status_code == 200, exported.text
    assert exported.headers["content-type"].startswith("application/gzip")
    await new_org(live, "gamma")
    no_confirm = await live.http.post(
        "/api/v1/orgs/gamma/import", headers=live.admin, content=exported.content
    )
    assert_problem(no_confirm, 422, "confirmation_required")
    garbage = await live.http.post(
        "/api/v1/orgs/gamma/import",
        headers=live.admin,
        params={"confirm": "gamma"},
        content=b"\x1f\x8b not really an archive",
    )
    assert_problem(garbage, 422, "invalid_archive")
    # Over the target's storage quota, counted on the files' real bytes (3,600 here): 413 (the
    # code before issue 21's fix imported it: 200).
    await set_limits(live, "gamma", {"max_storage_bytes": 1000}, quota=lambda q: q == 1000)
    too_big = await live.http.post(
        "/api/v1/orgs/gamma/import",
        headers=live.admin,
        params={"confirm": "gamma"},
        content=exported.content,
    )
    assert_problem(too_big, 413, "storage_quota_exceeded")
    await set_limits(live, "gamma", {}, quota=lambda q: q != 1000)  # the plan's quota again
    imported = await live.http.post(
        "/api/v1/orgs/gamma/import",
        headers=live.admin,
        params={"confirm": "gamma"},
        content=exported.content,
    )
    assert imported.status_code == 200, imported.text
    assert await read_data(live, "gamma") == DATA
    listed = (await live.http.get("/api/v1/orgs/gamma/backups", headers=live.admin)).json()
    # The refused uploads are kept as failed imports (files removed), the good one is ready.
    assert sorted((b["kind"], b["status"]) for b in listed["items"]) == [
        ("import", "failed"),
        ("import", "failed"),
        ("import", "ready"),
        ("pre_restore", "ready"),
    ]


async def test_other_orgs_admins_get_404_and_members_403(live: Live) -> None:
    await new_org(live, "alpha")
    await new_org(live, "beta")
    backup = (await live.http.post("/api/v1/orgs/alpha/backups", headers=live.admin)).json()
    beta_admin = await _login(live, "beta-admin@example.com")
    await _add(live, "beta", "beta-admin@example.com", "admin")
    member = await _login(live, "member@example.com")
    await _add(live, "alpha", "member@example.com", "member")

    for path in ("/backups", f"/backups/{backup['id']}", f"/backups/{backup['id']}/archive"):
        assert_problem(
            await live.http.get(f"/api/v1/orgs/alpha{path}", headers=beta_admin),
            404,
            "org_not_found",
        )
        assert_problem(
            await live.http.get(f"/api/v1/orgs/alpha{path}", headers=member), 403, "admin_required"
        )
    assert_problem(
        await live.http.get("/api/v1/orgs/alpha/export", headers=beta_admin), 404, "org_not_found"
    )
    # beta's admin cannot pull alpha's data into beta: the backup is not theirs to see.
    pulled = await live.http.post(
        "/api/v1/orgs/beta/restore",
        headers=beta_admin,
        json={"backup_id": backup["id"], "confirm": "beta"},
    )
    assert_problem(pulled, 404, "backup_not_found")
    # Nor look it up through their own org.
    assert_problem(
        await live.http.get(f"/api/v1/orgs/beta/backups/{backup['id']}", headers=beta_admin),
        404,
        "backup_not_found",
    )


async def test_instance_internal_routes_take_only_the_control_planes_token(live: Live) -> None:
    await new_org(live, "alpha")
    await new_org(live, "beta")
    runtime: Any = live.app.state.runtime
    async with runtime.sessions() as db:
        beta_org = (await db.exec(select(Org).where(col(Org.slug) == "beta"))).one()
        beta_token = await internal_token(runtime, db, org=beta_org, scope=SCOPE_BACKUP)
    owner_token = await org_token(live.http, live.admin, "alpha")
    async with await instance_client(live, "alpha") as inst:
        for path in (BACKUP_PATH, RESTORE_PATH):
            # An org token of the org's owner is not enough.
            refused = await inst.post(path, headers={"Authorization": f"Bearer {owner_token}"})
            assert_problem(refused, 403, "wrong_token_kind")
            # The control plane's token for another org is refused by this org's instance.
            other = await inst.post(path, headers={"Authorization": f"Bearer {beta_token}"})
            assert_problem(other, 401, "invalid_token")
            anonymous = await inst.post(path, headers={"Authorization": ""})
            assert_problem(anonymous, 401, "invalid_token")
    # The same token works on beta's own instance, for the scope it names only, and opens
    # nothing of the org's API.
    async with await instance_client(live, "beta") as inst:
        headers = {"Authorization": f"Bearer {beta_token}"}
        for path in ("/api/v1/sessions", "/api/v1/me"):
            assert_problem(await inst.get(path, headers=headers), 403, "wrong_token_kind")
        assert (await inst.post(BACKUP_PATH, headers=headers)).status_code == 200
        assert_problem(await inst.post(RESTORE_PATH, headers=headers), 403, "control_plane_only")


async def test_a_platform_admin_restores_a_deleted_orgs_backup_during_retention(
    live: Live,
) -> None:
    """A deleted org's backups are kept for its retention: a platform admin can restore one into
    another org; the deleted org's former owner cannot."""
    await new_org(live, "alpha")
    await new_org(live, "beta")
    await write_data(live, "alpha", title="moving", file_body=b"tenant data " * 300)
    backup = (await live.http.post("/api/v1/orgs/alpha/backups", headers=live.admin)).json()
    owner = await _login(live, "owner@example.com")
    await _add(live, "alpha", "owner@example.com", "owner")
    await _add(live, "beta", "owner@example.com", "owner")

    async with live.app.state.runtime.sessions() as db:
        org = (await db.exec(select(Org).where(col(Org.slug) == "alpha"))).one()
        org.desired_state, org.generation = "deleted", org.generation + 1
        db.add(org)
        await db.commit()
        org_id = org.id

    async def deleted() -> bool:
        async with live.app.state.runtime.sessions() as db:
            row = await db.get(Org, org_id)
            return row is not None and row.deleted_at is not None

    await eventually(deleted, what="alpha deleted by the reconciler", timeout=60)
    body = {"backup_id": backup["id"], "confirm": "beta"}
    refused = await live.http.post("/api/v1/orgs/beta/restore", headers=owner, json=body)
    assert_problem(refused, 404, "backup_not_found")
    restored = await live.http.post("/api/v1/orgs/beta/restore", headers=live.admin, json=body)
    assert restored.status_code == 200, restored.text
    assert await read_data(live, "beta") == DATA
