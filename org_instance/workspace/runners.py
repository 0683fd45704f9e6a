"""Runners: registered by admins, each with a token valid only for this org's instance."""

from __future__ import annotations

import json
import sqlite3
import uuid
from typing import Any

from litestar import Request, delete, get, post
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_204_NO_CONTENT

from org_instance.auth import require_admin
from org_instance.crypto import new_runner_token, runner_token_org
from org_instance.deps import Caller, Instance
from org_instance.runtime import LimitsState, utc_now
from org_instance.scopes import ADMIN
from org_instance.workspace.schemas import NewRunner, RegisteredRunner, RunnerBeat, RunnerOut
from orgplane_wire.problems import NotFound, Unauthorized
from orgplane_wire.secret_box import hash_secret

BASE = "/api/v1/runners"
HEARTBEAT = BASE + "/heartbeat"


def _out(row: sqlite3.Row) -> RunnerOut:
    return RunnerOut(
        id=row["id"],
        name=row["name"],
        labels=json.loads(row["labels"]),
        status=row["status"],
        created_by=row["created_by"],
        created_at=row["created_at"],
        last_seen_at=row["last_seen_at"],
        revoked_at=row["revoked_at"],
    )


def _register(
    conn: sqlite3.Connection, data: NewRunner, token: str, author: str, limits: LimitsState
) -> RunnerOut:
    used = conn.execute("SELECT count(*) FROM runners WHERE revoked_at IS NULL").fetchone()[0]
    limits.check_quota("max_runners", used=used)
    runner_id = uuid.uuid4().hex
    conn.execute(
        "INSERT INTO runners (id, name, labels, token_hash, created_by, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (runner_id, data.name, json.dumps(data.labels), hash_secret(token), author, utc_now()),
    )
    return _get(conn, runner_id)


def _get(conn: sqlite3.Connection, runner_id: str) -> RunnerOut:
    row = conn.execute("SELECT * FROM runners WHERE id = ?", (runner_id,)).fetchone()
    if row is None:
        raise NotFound("No such runner.", code="runner_not_found")
    return _out(row)


def _list(conn: sqlite3.Connection) -> list[RunnerOut]:
    rows = conn.execute("SELECT * FROM runners ORDER BY created_at, id").fetchall()
    return [_out(r) for r in rows]


def _revoke(conn: sqlite3.Connection, runner_id: str) -> None:
    _get(conn, runner_id)
    conn.execute(
        "UPDATE runners SET revoked_at = coalesce(revoked_at, ?), status = 'revoked' WHERE id = ?",
        (utc_now(), runner_id),
    )


def _beat(conn: sqlite3.Connection, token_hash: str, status: str) -> RunnerOut | None:
    row = conn.execute(
        "SELECT id FROM runners WHERE token_hash = ? AND revoked_at IS NULL", (token_hash,)
    ).fetchone()
    if row is None:
        return None
    conn.execute(
        "UPDATE runners SET last_seen_at = ?, status = ? WHERE id = ?",
        (utc_now(), status, row["id"]),
    )
    return _get(conn, row["id"])


@post(BASE, tags=["runners"], opt={"scope": ADMIN})
async def register_runner(
    data: JSONBody[NewRunner], caller: Caller, instance: Instance
) -> RegisteredRunner:
    """Register a runner (owners and admins); its token is shown once."""
    require_admin(caller)
    token = new_runner_token(instance.config.org_id)
    runner = await instance.db.run(_register, data, token, caller.sub, instance.limits)
    return RegisteredRunner(runner=runner, token=token)


@get(BASE, tags=["runners"])
async def list_runners(caller: Caller, instance: Instance) -> list[RunnerOut]:
    """Every runner of the org, revoked ones included."""
    return await instance.db.read(_list)


@delete(
    BASE + "/{runner_id:str}",
    tags=["runners"],
    status_code=HTTP_204_NO_CONTENT,
    opt={"scope": ADMIN},
)
async def revoke_runner(runner_id: FromPath[str], caller: Caller, instance: Instance) -> None:
    """Revoke a runner's token (owners and admins); idempotent."""
    require_admin(caller)
    await instance.db.run(_revoke, runner_id)


@post(HEARTBEAT, tags=["runners"], status_code=HTTP_200_OK)
async def runner_heartbeat(
    request: Request[Any, Any, Any], data: JSONBody[RunnerBeat], instance: Instance
) -> RunnerOut:
    """A runner reports in with its own token (``Authorization: Bearer ort_...``)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or runner_token_org(token) != instance.config.org_id:
        raise Unauthorized(
            "Send this org's runner token.", code="invalid_runner_token", presented=bool(token)
        )
    runner = await instance.db.run(_beat, hash_secret(token), data.status)
    if runner is None:
        raise Unauthorized("Send this org's runner token.", code="invalid_runner_token")
    return runner


ROUTES = [register_runner, list_runners, revoke_runner, runner_heartbeat]
