"""The workspace API of an org instance: sessions and messages, settings, runners, files, usage."""

from __future__ import annotations

import sqlite3
from typing import Any

from litestar.testing import AsyncTestClient

from org_instance.crypto import SettingsBox
from tests.instance.conftest import runtime_of
from tests.instance.helpers import Signer, bearer
from tests.support.api import assert_problem


async def post_chunked(
    client: AsyncTestClient[Any],
    path: str,
    query: str,
    headers: dict[str, str],
    chunks: list[bytes],
) -> tuple[int, bytes]:
    """POST ``chunks`` straight to the ASGI app with no Content-Length (the test client always
    sends one)."""
    events = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return events.pop(0) if events else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 80),
        "headers": [
            (b"host", b"acme.orgplane.test"),
            *((k.lower().encode(), v.encode()) for k, v in headers.items()),
        ],
    }
    await client.app(scope, receive, send)  # type: ignore[arg-type]
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def member(
    signer: Signer, org_id: str, role: str = "member", sub: str = "user-m"
) -> dict[str, str]:
    return bearer(signer.token(org_id, org_role=role, sub=sub))


async def test_sessions_create_list_page_rename_delete(
    instance: AsyncTestClient[Any], signer: Signer, org_id: str
) -> None:
    who = member(signer, org_id)
    ids = []
    for n in range(5):
        created = await instance.post("/api/v1/sessions", headers=who, json={"title": f"s{n}"})
        assert created.status_code == 201, created.text
        assert created.json()["created_by"] == "user-m"
        ids.append(created.json()["id"])
    seen, cursor = [], ""
    for _ in range(4):
        page = await instance.get(
            "/api/v1/sessions", headers=who, params={"limit": 2, "cursor": cursor}
        )
        assert page.status_code == 200, page.text
        seen += [s["id"] for s in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if not cursor:
            break
    assert seen == ids
    renamed = await instance.patch(f"/api/v1/sessions/{ids[0]}", headers=who, json={"title": "new"})
    assert renamed.json()["title"] == "new"
    assert (await instance.get(f"/api/v1/sessions/{ids[0]}", headers=who)).json()["title"] == "new"
    assert (await instance.delete(f"/api/v1/sessions/{ids[0]}", headers=who)).status_code == 204
    gone = await instance.get(f"/api/v1/sessions/{ids[0]}", headers=who)
    assert_problem(gone, 404, "session_not_found")
    assert_problem(await instance.delete(f"/api/v1/sessions/{ids[0]}", headers=who), 404)


async def test_messages_append_and_page(
    instance: AsyncTestClient[Any], signer: Signer, org_id: str
) -> None:
    who = member(signer, org_id)
    sid = (await instance.post("/api/v1/sessions", headers=who, json={})).json()["id"]
    for n in range(3):
        sent = await instance.post(
            f"/api/v1/sessions/{sid}/messages", headers=who, json={"body": f"hello {n}"}
        )
        assert sent.status_code == 201, sent.text
    first = (await instance.get(f"/api/v1/sessions/{sid}/messages?limit=2", headers=who)).json()
    assert [m["body"] for m in first["items"]] == ["hello 0", "hello 1"]
    rest = await instance.get(
        f"/api/v1/sessions/{sid}/messages", headers=who, params={"cursor": first["next_cursor"]}
    )
    assert [m["body"] for m in rest.json()["items"]] == ["hello 2"]
    assert rest.json()["next_cursor"] is None
    missing = await instance.post("/api/v1/sessions/nope/messages", headers=who, json={"body": "x"})
    assert_problem(missing, 404, "session_not_found")


async def test_bad_input_is_a_problem_with_a_stable_code(
    instance: AsyncTestClient[Any], signer: Signer, org_id: str
) -> None:
    who = member(signer, org_id)
    sid = (await instance.post("/api/v1/sessions", headers=who, json={})).json()["id"]
    cases = [
        ("POST", "/api/v1/sessions", {"title": "x", "owner": "me"}, 400),
        ("POST", "/api/v1/sessions", {"title": "x" * 201}, 400),
        ("POST", f"/api/v1/sessions/{sid}/messages", {"body": ""}, 400),
        ("GET", "/api/v1/sessions?limit=0", None, 400),
        ("GET", "/api/v1/sessions?limit=abc", None, 400),
        ("GET", "/api/v1/sessions?cursor=%%%", None, 400),
        ("GET", f"/api/v1/sessions/{sid}/messages?cursor=WyJ4Il0=", None, 400),
        ("PUT", "/api/v1/settings/bad key!", {"value": "x"}, 400),
        ("PUT", "/api/v1/settings/" + "k" * 101, {"value": "x"}, 400),
        ("PUT", "/api/v1/settings/ok", {"value": "x" * 10_001}, 400),
    ]
    admin = member(signer, org_id, "admin")
    for method, path, body, status in cases:
        response = await instance.request(method, path, headers=admin, json=body)
        assert_problem(response, status)
    broken = await instance.post(
        "/api/v1/sessions", headers={**who, "content-type": "application/json"}, content=b"{"
    )
    assert_problem(broken, 400)


async def test_secret_settings_are_write_only_and_encrypted_at_rest(
    instance: AsyncTestClient[Any], signer: Signer, org_id: str
) -> None:
    admin = member(signer, org_id, "admin", "user-a")
    plain = await instance.put("/api/v1/settings/theme", headers=admin, json={"value": "dark"})
    assert plain.status_code == 200
    assert plain.json()["value"] == "dark"
    secret_value = "sk-live-canary-1234567890"
    put = await instance.put(
        "/api/v1/settings/api.key", headers=admin, json={"value": secret_value, "secret": True}
    )
    assert put.status_code == 200, put.text
    assert put.json() == {**put.json(), "secret": True, "value": None}
    for path in ("/api/v1/settings", "/api/v1/settings/api.key"):
        answer = await instance.get(path, headers=member(signer, org_id))
        assert answer.status_code == 200
        assert secret_value not in answer.text
    runtime = runtime_of(instance)
    with sqlite3.connect(runtime.config.data_dir / "instance.db") as conn:
        stored = conn.execute("SELECT value FROM settings WHERE key = 'api.key'").fetchone()[0]
    assert secret_value not in stored
    box = SettingsBox(credential=runtime.config.instance_credential, org_id=org_id)
    assert box.decrypt(stored) == secret_value
    other = SettingsBox(credential="opi_other.credential-xxxxxxxxxxxx", org_id=org_id)
    try:
        other.decrypt(stored)
        raise AssertionError("decrypted with another credential")
    except ValueError:
        pass
    assert (await instance.delete("/api/v1/settings/api.key", headers=admin)).status_code == 204
    assert_problem(await instance.get("/api/v1/settings/api.key", headers=admin), 404)


async def test_members_use_the_workspace_but_only_admins_change_settings_and_runners(
    instance: AsyncTestClient[Any], signer: Signer, org_id: str
) -> None:
    who = member(signer, org_id)
    writes = [
        ("PUT", "/api/v1/settings/theme", {"value": "x"}),
        ("DELETE", "/api/v1/settings/theme", None),
        ("POST", "/api/v1/runners", {"name": "r1"}),
        ("DELETE", "/api/v1/runners/whatever", None),
    ]
    for method, path, body in writes:
        assert_problem(
            await instance.request(method, path, headers=who, json=body), 403, "role_required"
        )
    for role in ("owner", "admin"):
        ok = await instance.put(
            "/api/v1/settings/theme", headers=member(signer, org_id, role), json={"value": role}
        )
        assert ok.status_code == 200


async def test_runners_register_beat_with_their_own_token_and_revoke(
    instance: AsyncTestClient[Any], signer: Signer, org_id: str
) -> None:
    admin = member(signer, org_id, "admin")
    registered = await instance.post(
        "/api/v1/runners", headers=admin, json={"name": "builder", "labels": ["linux", "x86_64"]}
    )
    assert registered.status_code == 201, registered.text
    token = registered.json()["token"]
    runner_id = registered.json()["runner"]["id"]
    assert token.startswith(f"ort_{org_id}.")
    listed = await instance.get("/api/v1/runners", headers=member(signer, org_id))
    assert [r["id"] for r in listed.json()] == [runner_id]
    assert token not in listed.text
    beat = await instance.post(
        "/api/v1/runners/heartbeat", headers=bearer(token), json={"status": "busy"}
    )
    assert beat.status_code == 200, beat.text
    assert beat.json()["status"] == "busy"
    assert beat.json()["last_seen_at"]
    other_org = token.replace(org_id, "f" * 32)
    for wrong in (other_org, token + "x", signer.token(org_id), ""):
        refused = await instance.post("/api/v1/runners/heartbeat", headers=bearer(wrong), json={})
        assert_problem(refused, 401, "invalid_runner_token")
    assert (await instance.delete(f"/api/v1/runners/{runner_id}", headers=admin)).status_code == 204
    after = await instance.post("/api/v1/runners/heartbeat", headers=bearer(token), json={})
    assert_problem(after, 401)
    revoked = (await instance.get("/api/v1/runners", headers=admin)).json()[0]
    assert revoked["status"] == "revoked"
    assert revoked["revoked_at"]


async def test_files_upload_list_download_delete(
    instance: AsyncTestClient[Any], signer: Signer, org_id: str
) -> None:
    who = member(signer, org_id)
    content = b"<html><script>alert(1)</script></html>"
    up = await instance.post(
        "/api/v1/files", headers=who, params={"name": "../../etc/pass\x00wd.html"}, content=content
    )
    assert up.status_code == 201, up.text
    meta = up.json()
    assert meta["name"] == "passwd.html"
    assert meta["size"] == len(content)
    listed = (await instance.get("/api/v1/files", headers=who)).json()
    assert [f["id"] for f in listed["items"]] == [meta["id"]]
    down = await instance.get(f"/api/v1/files/{meta['id']}/content", headers=who)
    assert down.status_code == 200
    assert down.content == content
    assert down.headers["content-type"] == "application/octet-stream"
    assert down.headers["x-content-type-options"] == "nosniff"
    assert down.headers["content-disposition"].startswith("attachment")
    files_dir = runtime_of(instance).files_dir
    assert [p.name for p in files_dir.iterdir()] == [meta["id"]]
    assert (await instance.delete(f"/api/v1/files/{meta['id']}", headers=who)).status_code == 204
    assert list(files_dir.iterdir()) == []
    assert_problem(await instance.get(f"/api/v1/files/{meta['id']}/content", headers=who), 404)
    for bad in ("", "...", "/", "\x01\x02"):
        refused = await instance.post(
            "/api/v1/files", headers=who, params={"name": bad}, content=b"x"
        )
        assert_problem(refused, 400, "invalid_file_name")


async def test_storage_quota_refuses_uploads_and_leaves_nothing_behind(
    make_instance: Any, signer: Signer
) -> None:
    async with make_instance(limits={"max_storage_bytes": 100}) as instance:
        org_id = runtime_of(instance).config.org_id
        who = member(signer, org_id)
        first = await instance.post(
            "/api/v1/files", headers=who, params={"name": "a"}, content=b"x" * 60
        )
        assert first.status_code == 201
        second = await instance.post(
            "/api/v1/files", headers=who, params={"name": "b"}, content=b"y" * 60
        )
        body = assert_problem(second, 403, "quota_exceeded")
        assert body["limit"] == "max_storage_bytes"

        # No Content-Length: refused while streaming, after 40 of the 100 bytes.
        status, body = await post_chunked(
            instance, "/api/v1/files", "name=c", who, [b"z" * 10] * 10
        )
        assert status == 403
        assert b"quota_exceeded" in body
        files_dir = runtime_of(instance).files_dir
        assert [p.name for p in files_dir.iterdir()] == [first.json()["id"]]
        usage = (await instance.get("/api/v1/usage", headers=who)).json()
        assert usage["usage"]["storage_bytes"] == 60
        assert runtime_of(instance).usage.storage_bytes == 60


async def test_usage_and_me(instance: AsyncTestClient[Any], signer: Signer, org_id: str) -> None:
    who = member(signer, org_id, "owner", "user-o")
    me = (await instance.get("/api/v1/me", headers=who)).json()
    assert me == {
        "sub": "user-o",
        "role": "owner",
        "org_id": org_id,
        "org_slug": "acme",
        # Before a heartbeat answer brings the org's branding: its slug, nothing else.
        "branding": {
            "display_name": "acme",
            "primary_color": None,
            "text_color": None,
            "contact_email": None,
            "logo_url": None,
        },
    }
    sid = (await instance.post("/api/v1/sessions", headers=who, json={})).json()["id"]
    await instance.post(f"/api/v1/sessions/{sid}/messages", headers=who, json={"body": "hi"})
    usage = (await instance.get("/api/v1/usage", headers=who)).json()
    assert usage["usage"] == {
        "sessions": 1,
        "messages": 1,
        "runners": 0,
        "files": 0,
        "storage_bytes": 0,
    }
    counters = runtime_of(instance).usage.counters()
    assert counters["sessions"] == 1
    assert counters["messages"] == 1
    assert counters["requests"] == 4
    assert counters["active_users"] == 1
