"""``orgplane conformance``: check an org-instance image (or a running server) against the
contract and print the report; exit status 1 when any clause fails (docs/conformance.md)."""

from __future__ import annotations

import argparse
import sys
from typing import Any
from urllib.parse import urlsplit

from conformance_kit.defaults import DEFAULT_INTERVAL, DEFAULT_PATH


def _pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def register(sub: Any) -> None:
    """Add the ``conformance`` command."""
    parser = sub.add_parser(
        "conformance",
        help="check an org-instance image or server against the instance contract",
        description="Run the conformance kit: start IMAGE as the Docker provisioner would (or "
        "talk to the server at URL) and check every clause of the org-instance contract. "
        "Prints a report; exits 1 when a clause fails. See docs/conformance.md.",
    )
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--image", help="the image to start and check (needs a Docker engine)")
    what.add_argument(
        "--url",
        help="a running server to check (tokens, Host and probes only); start it with "
        "the environment --print-env shows",
    )
    parser.add_argument(
        "--env",
        action="append",
        type=_pair,
        default=[],
        metavar="NAME=VALUE",
        help="an extra environment variable for the container (repeatable)",
    )
    parser.add_argument("--org-id", default="", help="the org id (--url: the server's)")
    parser.add_argument(
        "--hostname",
        action="append",
        default=[],
        help="a hostname the instance answers for (repeatable; default: one of the kit's, or "
        "the host of --url)",
    )
    parser.add_argument(
        "--path", default=DEFAULT_PATH, help=f"an org route to send tokens to ({DEFAULT_PATH})"
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=DEFAULT_INTERVAL,
        help="heartbeat interval the kit's answers set, in seconds",
    )
    parser.add_argument(
        "--outage",
        type=float,
        default=8.0,
        help="seconds the kit answers heartbeats with 503 to watch the backoff",
    )
    parser.add_argument(
        "--start-timeout",
        type=float,
        default=60.0,
        help="seconds to wait for the probes to answer 200 (at start and after the restart)",
    )
    parser.add_argument(
        "--first-beat-timeout",
        type=float,
        default=20.0,
        help="seconds to wait for the first heartbeat",
    )
    parser.add_argument(
        "--stop-deadline",
        type=float,
        default=10.0,
        help="seconds an instance may take to exit after SIGTERM (the contract's: 10)",
    )
    parser.add_argument(
        "--redis",
        default="",
        metavar="URL",
        help="an admin Redis URL: the kit makes the org's ACL user and checks the namespace",
    )
    parser.add_argument(
        "--redis-host",
        default="",
        help="HOST[:PORT] of that Redis as the container reaches it (default port 6379)",
    )
    parser.add_argument(
        "--redis-network",
        default="",
        help="a Docker network to join the container to as well (where that Redis is)",
    )
    parser.add_argument(
        "--jwks-host", default="127.0.0.1", help="--url: where the kit's JWKS listens"
    )
    parser.add_argument("--jwks-port", type=int, default=0, help="--url: the JWKS port")
    parser.add_argument(
        "--print-env",
        action="store_true",
        help="--url: print the environment the server needs and exit",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=cmd_conformance)


def cmd_conformance(args: argparse.Namespace) -> int:
    """Run the kit; 0 when every clause passed, 1 otherwise, 2 for unusable arguments."""
    from conformance_kit.runner import run_conformance, url_env  # heavy: only when it runs

    if args.url:
        if not args.jwks_port or not args.org_id:
            print("orgplane: --url needs --org-id and --jwks-port", file=sys.stderr)
            return 2
        hostnames = tuple(args.hostname) or (str(urlsplit(args.url).hostname),)
        env = url_env(
            org_id=args.org_id,
            jwks_host=args.jwks_host,
            jwks_port=args.jwks_port,
            hostnames=hostnames,
        )
        print("Start the server with:", file=sys.stderr)
        for name, value in env.items():
            print(f"  {name}={value}", file=sys.stderr)
        if args.print_env:
            return 0
    report = run_conformance(
        image=args.image or "",
        url=args.url or "",
        env_extra=dict(args.env),
        org_id=args.org_id,
        path=args.path,
        hostnames=tuple(args.hostname),
        interval=args.interval,
        outage=args.outage,
        start_timeout=args.start_timeout,
        first_beat_timeout=args.first_beat_timeout,
        stop_deadline=args.stop_deadline,
        redis_url=args.redis,
        redis_host=args.redis_host,
        redis_network=args.redis_network,
        jwks_host=args.jwks_host,
        jwks_port=args.jwks_port,
    )
    print(report.to_json() if args.json else report.table())
    return 0 if report.ok else 1
