"""The test relay (tests/support/relay.py) passes bytes both ways to the target it is given per
connection, and closes a connection it has no target for."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest

from tests.support.relay import Relay


class _Upper(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        self.wfile.write(self.rfile.readline().upper())


@pytest.fixture
def upper() -> Iterator[tuple[str, int]]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Upper)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[0], server.server_address[1]
    server.shutdown()
    server.server_close()


def _ask(port: int, line: bytes) -> bytes:
    """Send ``line`` (if any) and read the answer's first line (b"": closed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        if line:  # unread bytes at a close would make it a reset
            conn.sendall(line)
        return conn.makefile("rb").readline()


def test_bytes_go_both_ways_to_the_target_named_per_connection(upper: tuple[str, int]) -> None:
    target: list[tuple[str, int]] = []
    relay = Relay("127.0.0.1", lambda: target[0])
    try:
        assert _ask(relay.port, b"") == b""  # no target yet: closed
        target.append(upper)
        assert _ask(relay.port, b"hello\n") == b"HELLO\n"
    finally:
        relay.close()
    with pytest.raises(ConnectionRefusedError):  # closed: no longer listening
        socket.create_connection(("127.0.0.1", relay.port), timeout=5).close()
