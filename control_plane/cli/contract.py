"""``orgplane contract schemas``: write (or ``--check``) the contract's JSON Schemas."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    """Add the ``contract`` command group."""
    parser = sub.add_parser(
        "contract", help="the org-instance contract (docs/instance-contract.md)"
    )
    commands = parser.add_subparsers(dest="contract_command", required=True, metavar="COMMAND")
    schemas = commands.add_parser(
        "schemas",
        help="write the contract's JSON Schemas (docs/contract/v1/*.schema.json)",
        description="Generate the JSON Schemas of the heartbeat body and answer, the org token "
        "claims and the pool assignment from orgplane_wire/contract.py.",
    )
    schemas.add_argument(
        "--out",
        type=Path,
        default=Path("docs/contract"),
        help="directory holding one folder per contract version (default: docs/contract)",
    )
    schemas.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 when the files differ from the code",
    )
    schemas.set_defaults(func=cmd_schemas)


def cmd_schemas(args: argparse.Namespace) -> int:
    """Write the schemas, or check them (exit code 1 on drift)."""
    from control_plane.contract.schemas import drift, write

    if args.check:
        problems = drift(args.out)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("run `orgplane contract schemas` and commit the result", file=sys.stderr)
        return 1 if problems else 0
    for path in write(args.out):
        print(path)
    return 0
