"""Migration 0010_mfa on a database with data: existing users have no second factor, existing
sessions and orgs read as password-only and not requiring MFA; and it goes down again."""

from __future__ import annotations

from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from control_plane.db.migrate import _config, current_revision, head_revision, upgrade

#: The revision 0010_mfa follows (whatever the chain it is merged into).
BELOW = str(ScriptDirectory.from_config(_config()).get_revision("0010_mfa").down_revision)


async def _downgrade(url: str, revision: str) -> None:
    engine = create_async_engine(url, poolclass=NullPool)
    async with engine.begin() as conn:
        await conn.run_sync(lambda sync: command.downgrade(_config(sync), revision))
    await engine.dispose()


async def test_upgrade_fills_existing_rows_and_downgrade_removes_it(database_url: str) -> None:
    await _downgrade(database_url, BELOW)
    engine = create_async_engine(database_url, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    'INSERT INTO "user" (id, email, name, password_hash, is_platform_admin, '
                    "disabled, session_version, created_at, updated_at) VALUES ('u1', "
                    "'a@example.com', '', 'x', false, false, 1, CURRENT_TIMESTAMP, "
                    "CURRENT_TIMESTAMP)"
                )
            )
            await conn.execute(
                text(
                    "INSERT INTO refreshtoken (id, family_id, user_id, token_hash, created_at, "
                    "expires_at) VALUES ('r1', 'f1', 'u1', 'h1', CURRENT_TIMESTAMP, "
                    "CURRENT_TIMESTAMP)"
                )
            )
        await upgrade(engine)
        assert await current_revision(engine) == head_revision()
        async with engine.connect() as conn:
            user = (
                await conn.execute(
                    text('SELECT totp_secret_enc, totp_enabled_at, totp_last_step FROM "user"')
                )
            ).one()
            amr = (await conn.execute(text("SELECT amr FROM refreshtoken"))).scalar_one()
            codes = (await conn.execute(text("SELECT count(*) FROM recoverycode"))).scalar_one()
        assert tuple(user) == ("", None, 0)
        assert (amr, codes) == ("pwd", 0)
    finally:
        await engine.dispose()
    await _downgrade(database_url, BELOW)
    engine = create_async_engine(database_url, poolclass=NullPool)
    try:
        assert await current_revision(engine) == BELOW
        async with engine.connect() as conn:
            columns = (await conn.execute(text("SELECT * FROM refreshtoken"))).keys()
        assert "amr" not in columns
    finally:
        await engine.dispose()
