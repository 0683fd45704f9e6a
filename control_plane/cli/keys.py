"""``orgplane keys list``, ``rotate`` and ``retire``: signing keys, on the configured database.

They read ``ORGPLANE_*`` settings like the server (database URL, deployment secret) and need a
migrated database; the running control planes pick a rotation up within seconds.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import datetime
from typing import Any

from control_plane.cli.main import CliError


def register(sub: Any) -> None:
    """Add the key commands."""
    keys = sub.add_parser("keys", help="signing keys (JWKS)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    listing = keys_sub.add_parser("list", help="every signing key and its state")
    listing.set_defaults(func=cmd_list)
    rotate = keys_sub.add_parser(
        "rotate", help="publish a new key now; it signs after one JWKS cache lifetime"
    )
    rotate.set_defaults(func=cmd_rotate)
    retire = keys_sub.add_parser(
        "retire", help="emergency: a compromised key stops verifying now, everywhere"
    )
    retire.add_argument("kid")
    retire.set_defaults(func=cmd_retire)


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S}" if moment else "-"


async def _with_runtime(action: str, kid: str = "") -> Any:
    from control_plane.db.migrate import DatabaseNotMigrated, ensure_migrated
    from control_plane.runtime import ConfigurationError, Runtime
    from control_plane.settings import get_settings
    from control_plane.tokens.rotation import KeyNotFound, RotationPending, list_keys, rotate_keys

    try:
        runtime = Runtime.build(get_settings())
    except ConfigurationError as exc:
        raise CliError(str(exc)) from None
    try:
        await ensure_migrated(runtime.engine)
        async with runtime.sessions() as db:
            if action == "rotate":
                return await rotate_keys(runtime, db, actor_email="cli", reason="orgplane keys")
            if action == "retire":
                return await _retire(runtime, db, kid)
            return await list_keys(db)
    except DatabaseNotMigrated as exc:
        raise CliError(str(exc)) from None
    except RotationPending as exc:
        raise CliError(f"a rotation is under way: {exc}") from None
    except KeyNotFound:
        raise CliError(f"no published signing key has the kid {kid}") from None
    finally:
        await runtime.close()


async def _retire(runtime: Any, db: Any, kid: str) -> Any:
    """Retire ``kid`` and tell every org's instances (through Redis, when orgs have users)."""
    from control_plane.tokens.org_revocation import retire_key_everywhere
    from control_plane.tokens.rotation import retire_key_now

    view = await retire_key_now(runtime, db, kid=kid, actor_email="cli")
    store = runtime.settings.store
    told = 0
    if store.redis_url and store.redis_org_users:
        from redis.asyncio import Redis

        runtime.redis_admin = Redis.from_url(store.redis_url)
        try:
            told = await retire_key_everywhere(runtime, db, kid=kid)
        finally:
            await runtime.redis_admin.aclose()
    return view, told


def cmd_list(_: argparse.Namespace) -> None:
    """Print every key: kid, algorithm, state and its times (UTC)."""
    views = asyncio.run(_with_runtime("list"))
    print(f"{'KID':<24} {'ALG':<6} {'STATE':<9} {'SIGNS FROM':<19}  {'RETIRES':<19}  EXPIRES")
    for view in views:
        print(
            f"{view.kid:<24} {view.alg:<6} {view.state:<9} {_when(view.active_from):<19}  "
            f"{_when(view.retire_after):<19}  {_when(view.expires_at)}"
        )


def cmd_rotate(_: argparse.Namespace) -> None:
    """Start a rotation and say when the new key takes over."""
    view = asyncio.run(_with_runtime("rotate"))
    print(f"published key {view.kid} ({view.alg}); it signs from {_when(view.active_from)} UTC")


def cmd_retire(args: argparse.Namespace) -> None:
    """Retire a compromised key now and say how many orgs' instances were told."""
    view, told = asyncio.run(_with_runtime("retire", args.kid))
    print(f"retired key {view.kid}: it no longer verifies; {told} orgs' instances were told")
