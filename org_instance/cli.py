"""``orgplane instance``: run an org instance server (configured by ``ORGPLANE_*`` variables).

The same server as ``python -m org_instance``, the container image's entry point. The
control plane's CLI loads this module by name (``COMMAND_MODULES``), as it loads the
conformance kit's, so the control plane never imports the instance; the server itself is
imported only when this command runs, so the rest of the CLI never loads it.
"""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    """Add the ``instance`` command."""
    parser = sub.add_parser(
        "instance",
        help="run an org instance (configured by ORGPLANE_ORG_ID, ORGPLANE_DATA_DIR, ...)",
        description="Serve one org's instance. Every setting comes from the environment; "
        "see docs/org-instance.md.",
    )
    parser.set_defaults(func=cmd_instance)


def cmd_instance(_: argparse.Namespace) -> int:
    """Serve until stopped; exit code 2 when the environment is not a valid configuration."""
    from org_instance.server import main

    return main()
