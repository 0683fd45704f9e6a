"""Start-up steps: migrate or check the schema, make sure a key can sign, first admin."""

from __future__ import annotations

import structlog
from sqlmodel import select

from control_plane.db.migrate import ensure_migrated, upgrade
from control_plane.db.models import User
from control_plane.runtime import Runtime
from control_plane.users.service import create_user

log = structlog.get_logger("orgplane.bootstrap")


async def prepare_database(runtime: Runtime) -> None:
    """Embedded mode migrates; production refuses an unmigrated database."""
    settings = runtime.settings
    if settings.server.mode == "embedded":
        await upgrade(runtime.engine)
    else:
        await ensure_migrated(runtime.engine)
    async with runtime.sessions() as db:
        await runtime.keyring.ensure_key(db)
        await _admin_from_environment(runtime)


async def _admin_from_environment(runtime: Runtime) -> None:
    email = runtime.settings.security.admin_email
    password = runtime.settings.security.admin_password.get_secret_value()
    if not (email and password):
        return
    async with runtime.sessions() as db:
        exists = (await db.exec(select(User).where(User.is_platform_admin))).first()
        if exists is None:
            await create_user(db, email=email, password=password, is_platform_admin=True)
            await db.commit()
            log.info("created the first platform admin from the environment", email=email)
