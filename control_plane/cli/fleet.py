"""``orgplane versions ...`` and ``orgplane rollouts ...``: the fleet's versions and staged
rollouts through the CLI's login (a platform admin's; docs/rollouts.md).

Problems the control plane answers are printed as their detail (exit code 1).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from control_plane.cli.session import one_at_a_time
from control_plane.cli.tokens import UserApi as Api


def _waves(text: str) -> list[int | str]:
    """``1,5%,25%,100%`` as the API's wave list."""
    return [part if part.endswith("%") else int(part) for part in text.split(",") if part]


def cmd_versions_list(_: argparse.Namespace) -> None:
    """Registered versions and how many orgs run each."""
    for v in Api().call("GET", "/api/v1/versions")["items"]:
        print(f"{v['name']:<20} {v['orgs']:>6} orgs  {v['image']}  {v['notes']}")


def cmd_versions_add(args: argparse.Namespace) -> None:
    """Register a version."""
    body = {
        "name": args.name,
        "image": args.image,
        "notes": args.notes,
        "schema_version": args.schema,
    }
    made = Api().call("POST", "/api/v1/versions", json=body)
    print(f"registered {made['name']} ({made['image']}), id {made['id']}")


def cmd_versions_fleet(_: argparse.Namespace) -> None:
    """Live orgs per image (and version) they run."""
    for row in Api().call("GET", "/api/v1/fleet/versions")["items"]:
        print(
            f"{row['version'] or '-':<20} {row['orgs']:>6} orgs  {row['image'] or '(not deployed)'}"
        )


def cmd_versions_org(args: argparse.Namespace) -> None:
    """The version an org runs."""
    body = Api().call("GET", f"/api/v1/orgs/{args.org}/version")
    pinned = f"  (pinned to {body['pinned_image']})" if body["pinned_image"] else ""
    print(f"{body['version'] or '-'}  {body['image']}  reported {body['reported_version']}{pinned}")


def cmd_versions_pin(args: argparse.Namespace) -> None:
    """Pin an org to a version (a redeploy with its image; rollouts skip the org), or unpin."""
    api = Api()
    body: dict[str, Any] = {"action": "redeploy"}
    if args.version:
        body["image"] = api.call("GET", f"/api/v1/versions/{args.version}")["image"]
    api.call("POST", f"/api/v1/orgs/{args.org}/instance/actions", json=body)
    print(f"{args.org} pinned to {args.version}" if args.version else f"{args.org} unpinned")


def _target(args: argparse.Namespace) -> dict[str, Any]:
    if args.plan:
        return {"kind": "plan", "plan": args.plan}
    if args.subtree:
        return {"kind": "subtree", "parent": args.subtree}
    if args.orgs:
        return {"kind": "orgs", "orgs": [o for o in args.orgs.split(",") if o]}
    if args.percent:
        return {"kind": "percent", "percent": args.percent}
    return {"kind": "all"}


def _summary(r: dict[str, Any]) -> str:
    counts = ", ".join(f"{n} {state}" for state, n in sorted(r["counts"].items()))
    wave = f"wave {min(r['current_wave'] + 1, r['wave_count'])}/{r['wave_count']}"
    reason = f"  ({r['reason']})" if r["reason"] else ""
    return f"{r['id']}  {r['state']:<12} -> {r['to_version']:<12} {wave}  {counts}{reason}"


def cmd_rollouts_create(args: argparse.Namespace) -> None:
    """Start a staged rollout."""
    body: dict[str, Any] = {
        "to_version": args.to,
        "target": _target(args),
        "waves": _waves(args.waves),
        "max_concurrent": args.max_concurrent,
        "health_deadline_seconds": args.deadline,
        "failure_threshold": args.threshold,
        "on_older_schema": args.on_older_schema,
    }
    if args.source:
        body["from_version"] = args.source
    print(_summary(Api().call("POST", "/api/v1/rollouts", json=body)))


def cmd_rollouts_list(_: argparse.Namespace) -> None:
    """Rollouts, newest first."""
    for r in Api().call("GET", "/api/v1/rollouts")["items"]:
        print(_summary(r))


def cmd_rollouts_show(args: argparse.Namespace) -> None:
    """A rollout and each of its orgs (``--json``: the API's answer)."""
    r = Api().call("GET", f"/api/v1/rollouts/{args.id}")
    if args.json:
        print(json.dumps(r, indent=2))
        return
    print(_summary(r))
    for o in r["orgs"]:
        wave = "-" if o["wave"] is None else o["wave"] + 1
        print(f"  {o['slug']:<40} wave {wave:<3} {o['state']:<12} {o['reason']}")


def cmd_rollouts_action(args: argparse.Namespace) -> None:
    """pause, resume or rollback."""
    body = {"reason": args.reason} if args.reason else None
    print(_summary(Api().call("POST", f"/api/v1/rollouts/{args.id}/{args.action}", json=body)))


def register(sub: Any) -> None:
    """Add the ``versions`` and ``rollouts`` command groups."""
    versions = sub.add_parser("versions", help="instance versions (platform admins)")
    vcmd = versions.add_subparsers(dest="versions_command", required=True, metavar="COMMAND")
    vcmd.add_parser("list", help="registered versions").set_defaults(
        func=one_at_a_time(cmd_versions_list)
    )
    add = vcmd.add_parser("add", help="register a version")
    add.add_argument("name")
    add.add_argument("image", help="an allow-listed image reference")
    add.add_argument("--notes", default="")
    add.add_argument("--schema", type=int, default=0, help="the instance's schema generation")
    add.set_defaults(func=one_at_a_time(cmd_versions_add))
    vcmd.add_parser("fleet", help="orgs per version").set_defaults(
        func=one_at_a_time(cmd_versions_fleet)
    )
    org = vcmd.add_parser("org", help="the version an org runs")
    org.add_argument("org")
    org.set_defaults(func=one_at_a_time(cmd_versions_org))
    pin = vcmd.add_parser("pin", help="pin an org to a version (rollouts skip it)")
    pin.add_argument("org")
    pin.add_argument("version")
    pin.set_defaults(func=one_at_a_time(cmd_versions_pin))
    unpin = vcmd.add_parser("unpin", help="let rollouts move the org again")
    unpin.add_argument("org")
    unpin.set_defaults(func=one_at_a_time(cmd_versions_pin), version="")

    rollouts = sub.add_parser("rollouts", help="staged rollouts (platform admins)")
    rcmd = rollouts.add_subparsers(dest="rollouts_command", required=True, metavar="COMMAND")
    create = rcmd.add_parser("create", help="start a staged rollout")
    create.add_argument("--to", required=True, help="the version to move to")
    create.add_argument("--from", dest="source", default="", help="move only orgs on this version")
    which = create.add_mutually_exclusive_group()
    which.add_argument("--all", action="store_true", help="every org (the default)")
    which.add_argument("--plan")
    which.add_argument("--subtree", help="a parent org and every org below it")
    which.add_argument("--orgs", help="comma-separated slugs or ids")
    which.add_argument("--percent", type=int)
    create.add_argument("--waves", default="1,25%,100%", help="cumulative, e.g. 1,5%%,25%%,100%%")
    create.add_argument("--max-concurrent", type=int, default=5)
    create.add_argument("--deadline", type=int, default=300, help="health-gate seconds per org")
    create.add_argument(
        "--threshold", type=float, default=0.0, help="failed fraction of a wave that pauses"
    )
    create.add_argument("--on-older-schema", choices=("refuse", "restore"), default="refuse")
    create.set_defaults(func=one_at_a_time(cmd_rollouts_create))
    rcmd.add_parser("list", help="rollouts").set_defaults(func=one_at_a_time(cmd_rollouts_list))
    show = rcmd.add_parser("show", help="a rollout and its orgs")
    show.add_argument("id")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=one_at_a_time(cmd_rollouts_show))
    for action in ("pause", "resume", "rollback"):
        act = rcmd.add_parser(action, help=f"{action} a rollout")
        act.add_argument("id")
        act.add_argument("--reason", default="")
        act.set_defaults(func=one_at_a_time(cmd_rollouts_action), action=action)
