"""Sessions and their messages; a new message is also published to the session's channel."""

from __future__ import annotations

import sqlite3
import uuid

import msgspec
from litestar import delete, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.status_codes import HTTP_204_NO_CONTENT

from org_instance.deps import Caller, Instance
from org_instance.runtime import LimitsState, utc_now
from org_instance.workspace.schemas import (
    MessageOut,
    NewMessage,
    NewSession,
    RenameSession,
    SessionOut,
)
from orgplane_wire.cursors import Page, check_limit, decode_cursor, encode_cursor
from orgplane_wire.problems import BadRequest, NotFound

BASE = "/api/v1/sessions"


def _session(row: sqlite3.Row) -> SessionOut:
    return SessionOut(
        id=row["id"],
        title=row["title"],
        created_by=row["created_by"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _message(row: sqlite3.Row) -> MessageOut:
    return MessageOut(
        id=row["id"],
        session_id=row["session_id"],
        author=row["author"],
        body=row["body"],
        created_at=row["created_at"],
    )


def _insert_session(
    conn: sqlite3.Connection, title: str, author: str, limits: LimitsState
) -> SessionOut:
    used = conn.execute("SELECT count(*) FROM sessions").fetchone()[0]
    limits.check_quota("max_sessions", used=used)
    now = utc_now()
    row = (uuid.uuid4().hex, title, author, now, now)
    conn.execute("INSERT INTO sessions VALUES (?, ?, ?, ?, ?)", row)
    return SessionOut(*row)


def get_session(conn: sqlite3.Connection, session_id: str) -> SessionOut:
    """The session, or 404."""
    row = conn.execute("SELECT * FROM sessions WHERE id = ?", (session_id,)).fetchone()
    if row is None:
        raise NotFound("No such session.", code="session_not_found")
    return _session(row)


def _list_sessions(conn: sqlite3.Connection, limit: int, cursor: str | None) -> Page[SessionOut]:
    if cursor:
        at, last = decode_cursor(cursor, 2)
        rows = conn.execute(
            "SELECT * FROM sessions WHERE (created_at, id) > (?, ?) "
            "ORDER BY created_at, id LIMIT ?",
            (at, last, limit + 1),
        ).fetchall()
    else:
        rows = conn.execute(
            "SELECT * FROM sessions ORDER BY created_at, id LIMIT ?", (limit + 1,)
        ).fetchall()
    items = [_session(r) for r in rows[:limit]]
    more = len(rows) > limit
    return Page(items, encode_cursor(items[-1].created_at, items[-1].id) if more else None)


def _rename(conn: sqlite3.Connection, session_id: str, title: str) -> SessionOut:
    get_session(conn, session_id)
    conn.execute(
        "UPDATE sessions SET title = ?, updated_at = ? WHERE id = ?",
        (title, utc_now(), session_id),
    )
    return get_session(conn, session_id)


def _delete(conn: sqlite3.Connection, session_id: str) -> None:
    if conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,)).rowcount == 0:
        raise NotFound("No such session.", code="session_not_found")


def _append(conn: sqlite3.Connection, session_id: str, author: str, body: str) -> MessageOut:
    get_session(conn, session_id)
    now = utc_now()
    cur = conn.execute(
        "INSERT INTO messages (session_id, author, body, created_at) VALUES (?, ?, ?, ?)",
        (session_id, author, body, now),
    )
    conn.execute("UPDATE sessions SET updated_at = ? WHERE id = ?", (now, session_id))
    return MessageOut(int(cur.lastrowid or 0), session_id, author, body, now)


def _message_cursor(cursor: str) -> int:
    raw = decode_cursor(cursor, 1)[0]
    if not raw.isdigit() or len(raw) > 18:
        raise BadRequest("The cursor is not valid.", code="invalid_cursor", field="cursor")
    return int(raw)


def _list_messages(
    conn: sqlite3.Connection, session_id: str, limit: int, cursor: str | None
) -> Page[MessageOut]:
    get_session(conn, session_id)
    after = _message_cursor(cursor) if cursor else 0
    rows = conn.execute(
        "SELECT * FROM messages WHERE session_id = ? AND id > ? ORDER BY id LIMIT ?",
        (session_id, after, limit + 1),
    ).fetchall()
    items = [_message(r) for r in rows[:limit]]
    return Page(items, encode_cursor(items[-1].id) if len(rows) > limit else None)


@post(BASE, tags=["sessions"])
async def create_session(
    data: JSONBody[NewSession], caller: Caller, instance: Instance
) -> SessionOut:
    """Start a session (403 ``quota_exceeded`` above ``max_sessions``)."""
    out = await instance.db.run(_insert_session, data.title, caller.sub, instance.limits)
    instance.usage.sessions += 1
    return out


@get(BASE, tags=["sessions"])
async def list_sessions(
    caller: Caller, instance: Instance, limit: FromQuery[int] = 50, cursor: FromQuery[str] = ""
) -> Page[SessionOut]:
    """Sessions, oldest first, one page at a time."""
    return await instance.db.read(_list_sessions, check_limit(limit, field=None), cursor or None)


@get(BASE + "/{session_id:str}", tags=["sessions"])
async def read_session(session_id: FromPath[str], caller: Caller, instance: Instance) -> SessionOut:
    """One session."""
    return await instance.db.read(get_session, session_id)


@patch(BASE + "/{session_id:str}", tags=["sessions"])
async def rename_session(
    session_id: FromPath[str], data: JSONBody[RenameSession], caller: Caller, instance: Instance
) -> SessionOut:
    """Rename a session."""
    return await instance.db.run(_rename, session_id, data.title)


@delete(BASE + "/{session_id:str}", tags=["sessions"], status_code=HTTP_204_NO_CONTENT)
async def delete_session(session_id: FromPath[str], caller: Caller, instance: Instance) -> None:
    """Delete a session and its messages."""
    await instance.db.run(_delete, session_id)


@post(BASE + "/{session_id:str}/messages", tags=["sessions"])
async def append_message(
    session_id: FromPath[str], data: JSONBody[NewMessage], caller: Caller, instance: Instance
) -> MessageOut:
    """Append a message; connected WebSocket clients of the session receive it."""
    message = await instance.db.run(_append, session_id, caller.sub, data.body)
    instance.usage.messages += 1
    instance.channels.publish(msgspec.json.encode(message), instance.session_channel(session_id))
    return message


@get(BASE + "/{session_id:str}/messages", tags=["sessions"])
async def list_messages(
    session_id: FromPath[str],
    caller: Caller,
    instance: Instance,
    limit: FromQuery[int] = 50,
    cursor: FromQuery[str] = "",
) -> Page[MessageOut]:
    """A session's messages, oldest first, one page at a time."""
    return await instance.db.read(
        _list_messages, session_id, check_limit(limit, field=None), cursor or None
    )


ROUTES = [
    create_session,
    list_sessions,
    read_session,
    rename_session,
    delete_session,
    append_message,
    list_messages,
]
