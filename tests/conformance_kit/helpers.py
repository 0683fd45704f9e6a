"""Ports for the kit's tests: from the range kept for them (25000-25999), never an ephemeral
one another test of the machine may be about to bind."""

from __future__ import annotations

import random
import socket

PORTS = range(25100, 25900)


def free_port_in_range(host: str = "127.0.0.1") -> int:
    """A port of :data:`PORTS` nothing is bound to at ``host`` now, tried from a random place
    so that two xdist workers asking at once seldom pick the same one."""
    start = random.randrange(len(PORTS))
    for port in [*PORTS[start:], *PORTS[:start]]:
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORTS.start}-{PORTS.stop - 1}")
