"""``orgplane runner register|list|revoke``: the current org's runners, on its instance.

The commands act on the CLI's current org (``orgplane switch SLUG``), with its org token, at
the URL the control plane gives for it (``GET /api/v1/me/orgs``, ``url``). ``register`` prints
the runner's token alone on standard output (and what it is on standard error), so
``orgplane runner register build-1 > runner.token`` leaves it with the runner side only: the
instance keeps its hash, and neither it nor ``list`` ever shows it again. ``revoke`` makes the
token unusable at once.

A ``*.localhost`` URL (``make run``'s ``http://acme.localhost:8080/``) is reached at the
loopback address with its Host kept (RFC 6761 §6.3), as browsers and curl do, whatever the
system resolver knows.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from control_plane.cli.main import CliError
from control_plane.cli.session import no_current_org, one_at_a_time, org_token
from control_plane.cli.tokens import UserApi

RUNNERS = "/api/v1/runners"


def loopback_for_localhost(url: str) -> tuple[str, dict[str, str]]:
    """``url`` and extra headers: a ``*.localhost`` host is dialled at 127.0.0.1, Host kept."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if host != "localhost" and not host.endswith(".localhost"):
        return url, {}
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"127.0.0.1{port}")), {"Host": parts.netloc}


class OrgInstance:
    """The current org's instance, called with the current org's token."""

    def __init__(self) -> None:
        api = UserApi()
        slug = api.session.current_org
        if not slug:
            raise no_current_org(api.session)
        self.slug, self.tenant = slug, api.session.tenant
        found = next((o for o in api.my_orgs() if o.get("slug") == slug), None)
        if found is None or not found.get("url"):
            raise CliError(f"the control plane gives no URL for {slug}; run `orgplane orgs`")
        self.url = str(found["url"]).rstrip("/")
        token = org_token(api.session, api.plane, slug)
        base, headers = loopback_for_localhost(self.url)
        headers["Authorization"] = f"Bearer {token}"
        self.http = httpx.Client(base_url=base, headers=headers, timeout=15.0, trust_env=False)

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """One request; failures become CLI errors naming the org."""
        try:
            answer = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            reason = str(exc) or type(exc).__name__
            raise CliError(f"cannot reach {self.slug} at {self.url} ({reason})") from None
        try:
            body = answer.json() if answer.content else {}
        except ValueError:
            body = {}
        if answer.status_code >= 400:
            detail = body.get("detail") if isinstance(body, dict) else None
            reason = self.tenant.reword(str(detail)) if detail else f"HTTP {answer.status_code}"
            raise CliError(f"{self.slug}: {reason}")
        return body


def cmd_register(args: argparse.Namespace) -> None:
    """Register a runner in the current org; print its token once."""
    org = OrgInstance()
    made = org.call("POST", RUNNERS, json={"name": args.name, "labels": args.label or []})
    runner = made["runner"]
    print(made["token"])
    print(
        f"runner {runner['id']} ({runner['name']}) registered in {org.slug}; its token is shown "
        "only this once: keep it with the runner",
        file=sys.stderr,
    )


def cmd_list(_: argparse.Namespace) -> None:
    """The current org's runners (never their tokens)."""
    org = OrgInstance()
    items: list[dict[str, Any]] = org.call("GET", RUNNERS)
    if not items:
        print(f"{org.slug} has no runners")
        return
    print(f"{'ID':<32}  {'NAME':<24} {'STATUS':<10} {'LABELS':<24} LAST SEEN")
    for item in items:
        labels = ",".join(item.get("labels") or []) or "-"
        seen = (item.get("last_seen_at") or "never")[:19]
        print(f"{item['id']:<32}  {item['name']:<24} {item['status']:<10} {labels:<24} {seen}")


def cmd_revoke(args: argparse.Namespace) -> None:
    """Revoke a runner of the current org by id; its token stops working."""
    org = OrgInstance()
    org.call("DELETE", f"{RUNNERS}/{args.id}")
    print(f"revoked runner {args.id} in {org.slug}")


def register(sub: Any) -> None:
    """Add ``orgplane runner``."""
    runner = sub.add_parser("runner", help="runners of the current org")
    commands = runner.add_subparsers(dest="runner_command", required=True)
    made = commands.add_parser("register", help="register a runner (its token printed once)")
    made.add_argument("name", help="the runner's name")
    made.add_argument("--label", action="append", help="a label of the runner (repeatable)")
    listing = commands.add_parser("list", help="the current org's runners")
    revoke = commands.add_parser("revoke", help="revoke a runner's token")
    revoke.add_argument("id", help="the runner's id (`orgplane runner list`)")
    for parser, command in ((made, cmd_register), (listing, cmd_list), (revoke, cmd_revoke)):
        parser.set_defaults(func=one_at_a_time(command))
