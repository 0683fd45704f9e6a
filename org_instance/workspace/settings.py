"""Org settings: key/value; secret values are encrypted at rest and never returned."""

from __future__ import annotations

import re
import sqlite3

from litestar import delete, get, put
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_204_NO_CONTENT

from org_instance.auth import require_admin
from org_instance.deps import Caller, Instance
from org_instance.runtime import utc_now
from org_instance.scopes import ADMIN
from org_instance.workspace.schemas import PutSetting, SettingOut
from orgplane_wire.problems import BadRequest, Forbidden, NotFound

BASE = "/api/v1/settings"
MAX_SETTINGS = 500
_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


def _checked(key: str) -> str:
    if not _KEY.match(key):
        raise BadRequest(
            "Setting keys are 1-100 letters, digits, '_', '.' or '-'.", code="invalid_setting_key"
        )
    return key


def _out(row: sqlite3.Row) -> SettingOut:
    secret = bool(row["secret"])
    return SettingOut(
        key=row["key"],
        secret=secret,
        value=None if secret else row["value"],
        updated_by=row["updated_by"],
        updated_at=row["updated_at"],
    )


def _list(conn: sqlite3.Connection) -> list[SettingOut]:
    return [_out(r) for r in conn.execute("SELECT * FROM settings ORDER BY key").fetchall()]


def _get(conn: sqlite3.Connection, key: str) -> SettingOut:
    row = conn.execute("SELECT * FROM settings WHERE key = ?", (key,)).fetchone()
    if row is None:
        raise NotFound("No such setting.", code="setting_not_found")
    return _out(row)


def _put(conn: sqlite3.Connection, key: str, stored: str, secret: bool, author: str) -> SettingOut:
    exists = conn.execute("SELECT 1 FROM settings WHERE key = ?", (key,)).fetchone()
    if exists is None:
        used = conn.execute("SELECT count(*) FROM settings").fetchone()[0]
        if used >= MAX_SETTINGS:
            raise Forbidden(f"At most {MAX_SETTINGS} settings.", code="quota_exceeded")
    conn.execute(
        "INSERT INTO settings (key, value, secret, updated_by, updated_at) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value, secret = excluded.secret, "
        "updated_by = excluded.updated_by, updated_at = excluded.updated_at",
        (key, stored, int(secret), author, utc_now()),
    )
    return _get(conn, key)


def _delete(conn: sqlite3.Connection, key: str) -> None:
    if conn.execute("DELETE FROM settings WHERE key = ?", (key,)).rowcount == 0:
        raise NotFound("No such setting.", code="setting_not_found")


@get(BASE, tags=["settings"])
async def list_settings(caller: Caller, instance: Instance) -> list[SettingOut]:
    """Every setting; secret ones show ``value: null``."""
    return await instance.db.read(_list)


@get(BASE + "/{key:str}", tags=["settings"])
async def read_setting(key: FromPath[str], caller: Caller, instance: Instance) -> SettingOut:
    """One setting (a secret one without its value)."""
    return await instance.db.read(_get, _checked(key))


@put(BASE + "/{key:str}", tags=["settings"], opt={"scope": ADMIN})
async def put_setting(
    key: FromPath[str], data: JSONBody[PutSetting], caller: Caller, instance: Instance
) -> SettingOut:
    """Create or replace a setting (owners and admins)."""
    require_admin(caller)
    _checked(key)
    stored = instance.box.encrypt(data.value) if data.secret else data.value
    return await instance.db.run(_put, key, stored, data.secret, caller.sub)


@delete(
    BASE + "/{key:str}", tags=["settings"], status_code=HTTP_204_NO_CONTENT, opt={"scope": ADMIN}
)
async def delete_setting(key: FromPath[str], caller: Caller, instance: Instance) -> None:
    """Delete a setting (owners and admins)."""
    require_admin(caller)
    await instance.db.run(_delete, _checked(key))


ROUTES = [list_settings, read_setting, put_setting, delete_setting]
