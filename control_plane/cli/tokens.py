"""``orgplane tokens create|list|revoke``: personal access tokens, through the CLI's login.

``create`` prints the new token alone on standard output (and what it is on standard error),
so ``orgplane tokens create ci --org acme > token`` keeps it; the control plane never shows it
again. Orgs are named by slug (or id) and sent as ids. A script then exchanges the token for an
org token at ``/oauth/token`` (docs/tokens.md).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from control_plane.cli.credentials import Session
from control_plane.cli.main import CliError
from control_plane.cli.session import EXPIRED_LOGIN, ControlPlane, access_token, one_at_a_time
from orgplane_wire.contract import ROLE_SCOPES

TOKENS = "/api/v1/me/tokens"
DEFAULT_SCOPES = ("org:read", "org:write")


class UserApi:
    """The logged-in user's calls to the control plane, with its failures as CLI errors."""

    def __init__(self) -> None:
        self.session = Session.load()
        self.plane = ControlPlane(self.session.url)

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {access_token(self.session, self.plane)}"}
        answer = self.plane.call(method, path, headers=headers, **kwargs)
        if answer.status_code == 401:
            raise CliError(EXPIRED_LOGIN.format(url=self.session.url))
        body = answer.json() if answer.content else {}
        if answer.status_code >= 400:
            detail = body.get("detail") if isinstance(body, dict) else None
            if detail:
                raise CliError(self.session.tenant.reword(str(detail)))
            raise CliError(f"the control plane answered HTTP {answer.status_code}")
        return body

    def my_orgs(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.call("GET", "/api/v1/me/orgs").get("items", [])
        return items


def _org_ids(api: UserApi, refs: list[str]) -> list[str]:
    orgs = api.my_orgs()
    ids = []
    for ref in refs:
        found = next((o["id"] for o in orgs if ref in (o.get("id"), o.get("slug"))), None)
        if found is None:
            raise CliError(f"unknown {api.session.tenant.one} or not yours: {ref}")
        ids.append(found)
    return ids


def cmd_create(args: argparse.Namespace) -> None:
    """Make a token; print it once."""
    api = UserApi()
    if bool(args.org) == bool(args.all_orgs):
        many = api.session.tenant.many
        raise CliError(f"name the {many} with --org SLUG (repeatable), or give --all-orgs")
    orgs: list[str] | str = "all" if args.all_orgs else _org_ids(api, args.org)
    body = {
        "name": args.name,
        "orgs": orgs,
        "scopes": args.scope or list(DEFAULT_SCOPES),
        "expires_in_days": args.days,
    }
    made = api.call("POST", TOKENS, json=body)
    print(made["token"])
    print(
        f"personal access token {made['id']} ({made['name']}), scopes {' '.join(made['scopes'])},"
        f" expires {made['expires_at']}; it is shown only this once",
        file=sys.stderr,
    )


def cmd_list(_: argparse.Namespace) -> None:
    """My tokens (never their secrets)."""
    api = UserApi()
    items = api.call("GET", TOKENS).get("items", [])
    if not items:
        print("you have no personal access tokens")
        return
    slugs = {o["id"]: o["slug"] for o in api.my_orgs()}
    column = api.session.tenant.plural.upper()[:20]
    print(f"{'ID':<32}  {'NAME':<20} {column:<20} {'SCOPES':<28} {'EXPIRES':<10}  LAST USED")
    for item in items:
        orgs = item["orgs"]
        where = "(all)" if orgs == "all" else ",".join(slugs.get(i, i) for i in orgs)
        expires = item["expires_at"][:10] + (" (expired)" if item["expired"] else "")
        used = (item.get("last_used_at") or "never")[:19]
        print(
            f"{item['id']:<32}  {item['name']:<20} {where:<20} {' '.join(item['scopes']):<28} "
            f"{expires:<10}  {used}"
        )


def cmd_revoke(args: argparse.Namespace) -> None:
    """Revoke a token by id."""
    UserApi().call("DELETE", f"{TOKENS}/{args.id}")
    print(f"revoked {args.id}")


def register(sub: Any) -> None:
    """Add ``orgplane tokens``."""
    tokens = sub.add_parser("tokens", help="personal access tokens for scripts")
    tokens_sub = tokens.add_subparsers(dest="tokens_command", required=True)
    create = tokens_sub.add_parser("create", help="make a token (printed once)")
    create.add_argument("name", help="what the token is for")
    create.add_argument("--org", action="append", help="an org (slug or id) it may enter")
    create.add_argument("--all-orgs", action="store_true", help="every org I belong to")
    create.add_argument(
        "--scope",
        action="append",
        choices=ROLE_SCOPES["owner"],
        help=f"a scope it may carry (repeatable; default: {' '.join(DEFAULT_SCOPES)})",
    )
    create.add_argument("--days", type=int, default=30, help="days until it expires (30)")
    create.set_defaults(func=one_at_a_time(cmd_create))
    listing = tokens_sub.add_parser("list", help="my tokens")
    listing.set_defaults(func=one_at_a_time(cmd_list))
    revoke = tokens_sub.add_parser("revoke", help="revoke a token")
    revoke.add_argument("id")
    revoke.set_defaults(func=one_at_a_time(cmd_revoke))
