"""``orgplane backups ...``: an org's backup key and legal hold (through the CLI's login, a
platform admin's), and ``rewrap`` after a platform key rotation (on the configured database,
like ``orgplane keys``). See docs/backups.md.

Problems the control plane answers are printed as their detail (exit code 1).
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from control_plane.cli.main import CliError, migrated_runtime
from control_plane.cli.session import one_at_a_time
from control_plane.cli.tokens import UserApi as Api


def _show(view: dict[str, Any]) -> str:
    hold = f"held ({view['legal_hold_reason']})" if view["legal_hold"] else "not held"
    ends = view["retention_ends_at"] or "-"
    return f"{view['org_id']}  key {view['state']}  {hold}  retention ends {ends}"


def cmd_status(args: argparse.Namespace) -> None:
    """The org's backup key state, legal hold and retention end."""
    print(_show(Api().call("GET", f"/api/v1/orgs/{args.org_id}/backup-key")))


def cmd_hold(args: argparse.Namespace) -> None:
    """Set (``hold``) or release (``release``) the legal hold."""
    body = {"hold": args.hold, "reason": args.reason}
    print(_show(Api().call("PUT", f"/api/v1/orgs/{args.org_id}/backup-key/legal-hold", json=body)))


def cmd_shred(args: argparse.Namespace) -> None:
    """Shred a deleted org's backups now (its id typed again as --confirm)."""
    body = {"confirm": args.confirm}
    print(_show(Api().call("POST", f"/api/v1/orgs/{args.org_id}/backup-key/shred", json=body)))


async def _rewrap() -> int:
    from control_plane.audit_trail import record
    from control_plane.backups.keys import rewrap_keys

    async with migrated_runtime() as runtime, runtime.sessions() as db:
        try:
            count = await rewrap_keys(runtime, db)
        except ValueError as exc:  # a key no configured platform key unwraps
            raise CliError(f"{exc}; list the old key in ORGPLANE_BACKUP_PREVIOUS_KEYS") from None
        record(
            db,
            action="backup.keys_rewrapped",
            actor_email="cli",
            target_type="backup_key",
            rewrapped=count,
        )
        await db.commit()
        return count


def cmd_rewrap(_: argparse.Namespace) -> None:
    """Rewrap every org's data key with the current platform key."""
    print(f"rewrapped {asyncio.run(_rewrap())} data keys with the current platform key")


def register(sub: Any) -> None:
    """Add the ``backups`` command group."""
    backups = sub.add_parser("backups", help="backup keys, legal hold, shredding (platform admins)")
    bcmd = backups.add_subparsers(dest="backups_command", required=True, metavar="COMMAND")
    status = bcmd.add_parser("status", help="an org's backup key, legal hold and retention")
    status.add_argument("org_id")
    status.set_defaults(func=one_at_a_time(cmd_status))
    hold = bcmd.add_parser("hold", help="keep an org's backups past retention (legal hold)")
    hold.add_argument("org_id")
    hold.add_argument("--reason", required=True)
    hold.set_defaults(func=one_at_a_time(cmd_hold), hold=True)
    release = bcmd.add_parser("release", help="release an org's legal hold")
    release.add_argument("org_id")
    release.set_defaults(func=one_at_a_time(cmd_hold), hold=False, reason="")
    shred = bcmd.add_parser("shred", help="shred a deleted org's backups now")
    shred.add_argument("org_id")
    shred.add_argument("--confirm", required=True, help="the org's id again")
    shred.set_defaults(func=one_at_a_time(cmd_shred))
    rewrap = bcmd.add_parser(
        "rewrap", help="rewrap data keys after ORGPLANE_BACKUP_KEY changed (database access)"
    )
    rewrap.set_defaults(func=cmd_rewrap)
