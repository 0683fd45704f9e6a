"""``orgplane access-approval SLUG on|off|show``: whether platform staff need an approved
access request to enter an org (its owners switch it; see docs/tokens.md)."""

from __future__ import annotations

import argparse
from typing import Any

from control_plane.cli.credentials import Session
from control_plane.cli.main import CliError
from control_plane.cli.session import EXPIRED_LOGIN, ControlPlane, access_token, one_at_a_time


def _answer(answer: Any, slug: str, session: Session) -> dict[str, Any]:
    if answer.status_code == 401:
        raise CliError(EXPIRED_LOGIN.format(url=session.url))
    if answer.status_code == 404:
        raise CliError(f"unknown {session.tenant.one} or no access: {slug}")
    try:
        body = answer.json()
    except ValueError:
        body = {}
    if answer.status_code != 200 or not isinstance(body, dict):
        detail = body.get("detail") if isinstance(body, dict) else None
        reason = session.tenant.reword(str(detail)) if detail else f"HTTP {answer.status_code}"
        raise CliError(f"cannot change {slug}: {reason}")
    return body


def cmd_access_approval(args: argparse.Namespace) -> None:
    """Show or switch the org's staff approval requirement."""
    session = Session.load()
    plane = ControlPlane(session.url)
    slug = args.slug.strip().lower()
    headers = {"Authorization": f"Bearer {access_token(session, plane)}"}
    if args.state == "show":
        answer = plane.call("GET", f"/api/v1/orgs/{slug}", headers=headers)
    else:
        answer = plane.call(
            "PUT",
            f"/api/v1/orgs/{slug}/access-approval",
            headers=headers,
            json={"required": args.state == "on"},
        )
    body = _answer(answer, slug, session)
    state = "on" if body.get("require_access_approval") else "off"
    print(f"{slug}: staff need an approved access request: {state}")


def register(sub: Any) -> None:
    """Add ``access-approval``."""
    parser = sub.add_parser(
        "access-approval", help="whether platform staff need an approved request to enter an org"
    )
    parser.add_argument("slug")
    parser.add_argument("state", choices=("on", "off", "show"))
    parser.set_defaults(func=one_at_a_time(cmd_access_approval))
