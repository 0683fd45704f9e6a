"""``orgplane admin create``: the first platform admin; ``orgplane admin reset-password``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from control_plane.cli.main import CliError

EMBEDDED_ADMIN = "admin@orgplane.localhost"


def register(sub: Any) -> None:
    """Add the admin commands."""
    admin = sub.add_parser("admin", help="platform admins")
    admin_sub = admin.add_subparsers(dest="admin_command", required=True)
    create = admin_sub.add_parser("create", help="create a platform admin")
    create.add_argument("--email", required=True)
    create.add_argument(
        "--password-stdin",
        action="store_true",
        required=True,
        help="read the password from standard input",
    )
    create.add_argument("--name", default="")
    create.set_defaults(func=cmd_create)
    reset = admin_sub.add_parser(
        "reset-password",
        help="mail a user a password-reset link (a running control plane sends it)",
    )
    reset.add_argument("email")
    reset.set_defaults(func=cmd_reset_password)


async def _create(email: str, password: str, name: str) -> str:
    from control_plane.audit_trail import record
    from control_plane.db.engine import make_engine, make_sessionmaker
    from control_plane.db.migrate import ensure_migrated
    from control_plane.settings import get_settings
    from control_plane.users.service import create_user
    from orgplane_wire.problems import ProblemError

    engine = make_engine(get_settings().database_url)
    try:
        await ensure_migrated(engine)
        async with make_sessionmaker(engine)() as db:
            try:
                user = await create_user(
                    db, email=email, password=password, name=name, is_platform_admin=True
                )
            except ProblemError as exc:
                raise CliError(exc.detail) from None
            record(
                db,
                action="user.create",
                actor_email="cli",
                target_type="user",
                target_id=user.id,
                via="orgplane admin create",
            )
            await db.commit()
            return user.email
    finally:
        await engine.dispose()


def cmd_create(args: argparse.Namespace) -> None:
    """Create a platform admin with a password read from stdin."""
    from control_plane.db.migrate import DatabaseNotMigrated

    password = sys.stdin.readline().rstrip("\n")
    try:
        email = asyncio.run(_create(args.email, password, args.name))
    except DatabaseNotMigrated as exc:
        raise CliError(str(exc)) from None
    print(f"created platform admin {email}")


def ensure_embedded_admin(*, one_time_password: str) -> tuple[str, str | None, bool]:
    """The embedded admin's email, the one-time password if one was used, and whether the admin
    was created by this call.

    With no platform admin yet, the first one is ``ORGPLANE_ADMIN_EMAIL`` (default
    ``admin@orgplane.localhost``) with ``ORGPLANE_ADMIN_PASSWORD``; only without that password is
    ``one_time_password`` used (and returned, to be shown once).
    """
    from sqlmodel import select

    from control_plane.db.engine import make_engine, make_sessionmaker
    from control_plane.db.models import User
    from control_plane.settings import get_settings
    from control_plane.users.service import create_user

    settings = get_settings()
    configured = settings.security.admin_password.get_secret_value()
    email = settings.security.admin_email or EMBEDDED_ADMIN
    password = configured or one_time_password

    async def run() -> tuple[str, str | None, bool]:
        engine = make_engine(settings.database_url)
        try:
            async with make_sessionmaker(engine)() as db:
                admin = (await db.exec(select(User).where(User.is_platform_admin))).first()
                if admin:
                    return admin.email, None, False
                user = await create_user(db, email=email, password=password, is_platform_admin=True)
                await db.commit()
                return user.email, None if configured else one_time_password, True
        finally:
            await engine.dispose()

    return asyncio.run(run())


async def _reset_password(email: str) -> str:
    from control_plane.audit_trail import record
    from control_plane.db.engine import make_engine, make_sessionmaker
    from control_plane.db.migrate import ensure_migrated
    from control_plane.identity.recovery import send_reset
    from control_plane.mail.outbox import require_mail
    from control_plane.settings import get_settings
    from control_plane.users.service import find_by_email
    from orgplane_wire.problems import ProblemError

    settings = get_settings()
    try:
        require_mail(settings)
    except ProblemError:
        raise CliError("Email is off: set ORGPLANE_SMTP_HOST (docs/identity.md).") from None
    engine = make_engine(settings.database_url)
    try:
        await ensure_migrated(engine)
        async with make_sessionmaker(engine)() as db:
            user = await find_by_email(db, email)
            if user is None or user.disabled:
                raise CliError(f"No active user has the email {email}.")
            send_reset(db, settings, user, by_admin=True)
            record(
                db,
                action="user.password_reset_sent",
                actor_email="cli",
                target_type="user",
                target_id=user.id,
                via="orgplane admin reset-password",
            )
            await db.commit()
            return user.email
    finally:
        await engine.dispose()


def cmd_reset_password(args: argparse.Namespace) -> None:
    """Queue a password-reset link to a user; the control plane's sender delivers it."""
    from control_plane.db.migrate import DatabaseNotMigrated

    try:
        email = asyncio.run(_reset_password(args.email))
    except DatabaseNotMigrated as exc:
        raise CliError(str(exc)) from None
    print(f"queued a password-reset link to {email}; a running control plane sends it")
