"""HTTP/1.1 over a plain socket: what a client that is not a well-behaved library sends.

No HTTP library here on purpose: they refuse to send a bad Host, an invalid request line or a
broken handshake. :func:`exchange` sends bytes, reads until the server closes or one answer is
complete, and reports how long that took, so a hung connection is a failure, not a hang.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from dataclasses import dataclass, field
from typing import Any

#: Seconds within which every request must be answered or closed.
ANSWER_WITHIN = 1.0
#: How long to wait before calling a connection hung (generous, so a loaded machine passes).
READ_BOUND = 10.0


@dataclass
class Answer:
    """What came back: the status (0 when the server closed without answering)."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    seconds: float = 0.0
    hung: bool = False

    @property
    def media_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip()

    def json(self) -> Any:
        return json.loads(self.body)

    def __str__(self) -> str:
        return f"{self.status} {self.media_type} {self.body[:200]!r} in {self.seconds:.2f}s"


def _complete(raw: bytes) -> bool:
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip() or 0)
    # A handshake answer (101) or a bodiless answer without Content-Length.
    return head.startswith(b"HTTP/1.1 101") or head.split(b" ")[1:2] in ([b"204"], [b"304"])


def _parse(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


def exchange(port: int, data: bytes, *, bound: float = READ_BOUND) -> Answer:
    """Send ``data`` to 127.0.0.1:``port``; the first answer, or the server's silence."""
    start = time.monotonic()
    raw = b""
    with socket.create_connection(("127.0.0.1", port), timeout=bound) as sock:
        # The server may answer and close before reading everything.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        sock.settimeout(bound)
        try:
            while not _complete(raw):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                raw += chunk
        except TimeoutError:
            return Answer(0, seconds=time.monotonic() - start, hung=True)
        except ConnectionResetError:
            pass
    status, headers, body = _parse(raw) if raw else (0, {}, b"")
    return Answer(status, headers, body, time.monotonic() - start)


def request(
    method: str,
    target: str,
    *,
    host: str | None = "127.0.0.1",
    headers: dict[str, str] | None = None,
    body: bytes = b"",
) -> bytes:
    """A request's bytes (``host=None`` sends no Host header); always ``Connection: close``."""
    lines = [f"{method} {target} HTTP/1.1"]
    if host is not None:
        lines.append(f"Host: {host}")
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


WEBSOCKET_HEADERS = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version": "13",
}


def handshake(target: str, *, host: str = "127.0.0.1", **extra: str) -> bytes:
    """A WebSocket upgrade request for ``target`` (no ``Connection: close``)."""
    lines = [f"GET {target} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in {**WEBSOCKET_HEADERS, **extra}.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
