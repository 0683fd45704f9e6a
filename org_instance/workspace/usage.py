"""Who am I in this org, and how much of the plan the org uses."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

from litestar import get

from org_instance.branding import default_branding
from org_instance.deps import Caller, Instance
from org_instance.workspace.files import stored_bytes


def _counts(conn: sqlite3.Connection) -> dict[str, int]:
    def count(sql: str) -> int:
        return int(conn.execute(sql).fetchone()[0])

    return {
        "sessions": count("SELECT count(*) FROM sessions"),
        "messages": count("SELECT count(*) FROM messages"),
        "runners": count("SELECT count(*) FROM runners WHERE revoked_at IS NULL"),
        "files": count("SELECT count(*) FROM files"),
    }


@get("/api/v1/me", tags=["usage"])
async def whoami(caller: Caller, instance: Instance) -> dict[str, Any]:
    """The caller as this instance sees them, and the org's branding (from the control
    plane; the org's slug as its name until the first heartbeat answer brings it)."""
    return {
        "sub": caller.sub,
        "role": caller.role,
        "org_id": instance.config.org_id,
        "org_slug": instance.config.org_slug,
        "branding": instance.branding or default_branding(instance.config.org_slug),
    }


@get("/api/v1/usage", tags=["usage"])
async def usage(caller: Caller, instance: Instance) -> dict[str, Any]:
    """Counts and bytes stored now, and the limits in force."""
    return {
        "org_id": instance.config.org_id,
        "usage": {
            **await instance.db.read(_counts),
            "storage_bytes": await asyncio.to_thread(stored_bytes, instance.files_dir),
        },
        "limits": instance.limits.values,
        "config_version": instance.limits.config_version,
    }


ROUTES = [whoami, usage]
