"""Files: upload, list, download, delete, within the plan's ``max_storage_bytes``.

A file is stored under ``DATA_DIR/files/<id>``; the client's name is kept only as metadata
(sanitised), so no name can reach outside that directory. Downloads are always
``application/octet-stream`` attachments with ``nosniff``, so an uploaded page never runs in the
org's origin.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
import unicodedata
import uuid
from pathlib import Path
from typing import Any

from litestar import Request, delete, get, post
from litestar.params import FromPath, FromQuery
from litestar.response import File
from litestar.status_codes import HTTP_204_NO_CONTENT

from org_instance.deps import Caller, Instance
from org_instance.runtime import InstanceRuntime, utc_now
from org_instance.workspace.schemas import FileOut
from orgplane_wire.cursors import Page, check_limit, decode_cursor, encode_cursor
from orgplane_wire.problems import BadRequest, NotFound

BASE = "/api/v1/files"
#: Largest single upload, whatever the plan says.
MAX_UPLOAD_BYTES = 64 * 1024 * 1024


def sanitize_name(raw: str) -> str:
    """A display name without directories, control characters or leading dots; 400 if empty."""
    name = unicodedata.normalize("NFC", raw).replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    name = name.lstrip(".").strip()[:255]
    if not name:
        raise BadRequest("The file needs a name.", code="invalid_file_name", field="name")
    return name


def _out(row: sqlite3.Row) -> FileOut:
    return FileOut(
        id=row["id"],
        name=row["name"],
        size=row["size"],
        sha256=row["sha256"],
        uploaded_by=row["uploaded_by"],
        created_at=row["created_at"],
    )


def _get(conn: sqlite3.Connection, file_id: str) -> FileOut:
    row = conn.execute("SELECT * FROM files WHERE id = ?", (file_id,)).fetchone()
    if row is None:
        raise NotFound("No such file.", code="file_not_found")
    return _out(row)


def _insert(conn: sqlite3.Connection, out: FileOut) -> None:
    conn.execute(
        "INSERT INTO files VALUES (?, ?, ?, ?, ?, ?)",
        (out.id, out.name, out.size, out.sha256, out.uploaded_by, out.created_at),
    )


def _list(conn: sqlite3.Connection, limit: int, cursor: str | None) -> Page[FileOut]:
    query, args = "SELECT * FROM files", []
    if cursor:
        query += " WHERE (created_at, id) > (?, ?)"
        args = decode_cursor(cursor, 2)
    rows = conn.execute(query + " ORDER BY created_at, id LIMIT ?", (*args, limit + 1)).fetchall()
    items = [_out(r) for r in rows[:limit]]
    more = len(rows) > limit
    return Page(items, encode_cursor(items[-1].created_at, items[-1].id) if more else None)


def _delete(conn: sqlite3.Connection, file_id: str) -> int:
    size = _get(conn, file_id).size
    conn.execute("DELETE FROM files WHERE id = ?", (file_id,))
    return size


def stored_bytes(files_dir: Path) -> int:
    """Bytes of every stored file, measured on disk (uploads in progress, dot-named, left out).

    Never the ``files`` rows' ``size``: a restored database sets those, so they could hide
    what the files really take."""
    try:
        entries = list(os.scandir(files_dir))
    except FileNotFoundError:
        return 0
    return sum(
        e.stat(follow_symlinks=False).st_size
        for e in entries
        if not e.name.startswith(".") and e.is_file(follow_symlinks=False)
    )


class _Upload:
    """Streams a body into a temporary file, reserving quota chunk by chunk."""

    def __init__(self, instance: InstanceRuntime) -> None:
        self.instance = instance
        self.reserved = 0
        self.digest = hashlib.sha256()
        self.path = instance.files_dir / f".upload-{uuid.uuid4().hex}"

    def reserve(self, size: int) -> None:
        # Check and add without an await in between: concurrent uploads cannot overshoot.
        usage = self.instance.usage
        self.instance.limits.check_quota("max_storage_bytes", used=usage.storage_bytes, adding=size)
        usage.storage_bytes += size
        self.reserved += size

    def release(self) -> None:
        self.instance.usage.storage_bytes -= self.reserved
        self.reserved = 0

    async def receive(self, request: Request[Any, Any, Any]) -> None:
        announced = request.headers.get("content-length", "")
        if announced.isdigit():  # refuse early, before reading a byte
            limits, used = self.instance.limits, self.instance.usage.storage_bytes
            limits.check_quota("max_storage_bytes", used=used, adding=int(announced))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = await asyncio.to_thread(self.path.open, "wb")
        try:
            async for chunk in request.stream():
                self.reserve(len(chunk))
                self.digest.update(chunk)
                await asyncio.to_thread(handle.write, chunk)
        finally:
            await asyncio.to_thread(handle.close)


@post(BASE, tags=["files"], request_max_body_size=MAX_UPLOAD_BYTES)
async def upload_file(
    request: Request[Any, Any, Any], caller: Caller, instance: Instance, name: FromQuery[str]
) -> FileOut:
    """Upload the raw request body as a file called ``name`` (403 ``quota_exceeded``)."""
    clean = sanitize_name(name)
    upload = _Upload(instance)
    try:
        await upload.receive(request)
        out = FileOut(
            uuid.uuid4().hex,
            clean,
            upload.reserved,
            upload.digest.hexdigest(),
            caller.sub,
            utc_now(),
        )
        await asyncio.to_thread(os.replace, upload.path, instance.files_dir / out.id)
        await instance.db.run(_insert, out)
    except BaseException:
        upload.release()
        await asyncio.to_thread(upload.path.unlink, missing_ok=True)
        raise
    instance.usage.files += 1
    return out


@get(BASE, tags=["files"])
async def list_files(
    caller: Caller, instance: Instance, limit: FromQuery[int] = 50, cursor: FromQuery[str] = ""
) -> Page[FileOut]:
    """Files, oldest first, one page at a time."""
    return await instance.db.read(_list, check_limit(limit, field=None), cursor or None)


@get(BASE + "/{file_id:str}", tags=["files"])
async def read_file(file_id: FromPath[str], caller: Caller, instance: Instance) -> FileOut:
    """A file's metadata."""
    return await instance.db.read(_get, file_id)


@get(BASE + "/{file_id:str}/content", tags=["files"])
async def download_file(file_id: FromPath[str], caller: Caller, instance: Instance) -> File:
    """A file's bytes, as an attachment."""
    out = await instance.db.read(_get, file_id)
    path: Path = instance.files_dir / out.id
    return File(
        path=path,
        filename=out.name,
        media_type="application/octet-stream",
        content_disposition_type="attachment",
        headers={"X-Content-Type-Options": "nosniff"},
    )


@delete(BASE + "/{file_id:str}", tags=["files"], status_code=HTTP_204_NO_CONTENT)
async def delete_file(file_id: FromPath[str], caller: Caller, instance: Instance) -> None:
    """Delete a file and free its bytes."""
    size = await instance.db.run(_delete, file_id)
    instance.usage.storage_bytes -= size
    await asyncio.to_thread((instance.files_dir / file_id).unlink, missing_ok=True)


ROUTES = [upload_file, list_files, read_file, download_file, delete_file]
