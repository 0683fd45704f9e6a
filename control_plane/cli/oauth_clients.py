"""``orgplane oauth-clients create``, ``list`` and ``delete``: the OpenID provider's registered
clients, on the configured database (like ``orgplane keys``: an operator's command, audited
with the actor ``cli``). ``create`` prints a confidential client's secret once, on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from control_plane.cli.database import on_database


def register(sub: Any) -> None:
    """Add the OAuth client commands."""
    clients = sub.add_parser("oauth-clients", help="OAuth / OpenID Connect clients")
    clients_sub = clients.add_subparsers(dest="oauth_clients_command", required=True)
    create = clients_sub.add_parser("create", help="register a client; prints its secret once")
    create.add_argument("name")
    create.add_argument("--type", choices=("confidential", "public"), default="confidential")
    create.add_argument(
        "--redirect-uri", action="append", required=True, help="exact; repeat for more"
    )
    create.add_argument(
        "--scope", action="append", help="openid, profile, email (default: all three)"
    )
    create.add_argument("--first-party", action="store_true", help="no consent page")
    create.set_defaults(func=cmd_create)
    clients_sub.add_parser("list", help="every registered client").set_defaults(func=cmd_list)
    remove = clients_sub.add_parser("delete", help="delete a client; its tokens stop working")
    remove.add_argument("client_id")
    remove.set_defaults(func=cmd_delete)


def cmd_create(args: argparse.Namespace) -> None:
    """Register a client; print its id (and its secret, for a confidential client)."""
    from control_plane.oidc.clients import OIDC_SCOPES, ClientType
    from control_plane.oidc.registry import Actor, register_client

    async def work(runtime: Any, db: Any) -> Any:
        return await register_client(
            runtime,
            db,
            name=args.name,
            client_type=ClientType(args.type),
            redirect_uris=list(args.redirect_uri),
            scopes=list(args.scope or OIDC_SCOPES),
            first_party=args.first_party,
            actor=Actor(email="cli"),
        )

    row, secret = asyncio.run(on_database(work))
    print(f"client_id: {row.id}")
    if secret is not None:
        print(f"client_secret: {secret}   (shown once)")


def cmd_list(_: argparse.Namespace) -> None:
    """Print every client: id, type, first party, scopes, redirect URIs."""
    from control_plane.oidc.clients import list_clients

    rows = asyncio.run(on_database(lambda _runtime, db: list_clients(db)))
    print(f"{'CLIENT_ID':<24} {'TYPE':<12} {'FIRST':<5} {'NAME':<20} REDIRECT URIS")
    for row in rows:
        first = "yes" if row.first_party else "no"
        print(
            f"{row.id:<24} {row.client_type:<12} {first:<5} {row.name[:20]:<20} "
            f"{' '.join(row.redirect_uris)}"
        )


def cmd_delete(args: argparse.Namespace) -> None:
    """Delete a client."""
    from control_plane.oidc.registry import Actor, delete_client

    asyncio.run(
        on_database(
            lambda _runtime, db: delete_client(db, args.client_id, actor=Actor(email="cli"))
        )
    )
    print(f"deleted {args.client_id}")
