"""Defaults shared by the kit's runner and its command line (a module of constants only, so that
registering ``orgplane conformance`` imports nothing heavy: every ``orgplane`` command, the
server included, builds the whole parser)."""

from __future__ import annotations

#: The path the token and Host clauses request: an org route of orgplane's own instance; any
#: path other than the probes must want an org token.
DEFAULT_PATH = "/api/v1/me"
#: The heartbeat interval the kit's control plane asks for, in seconds.
DEFAULT_INTERVAL = 0.5
