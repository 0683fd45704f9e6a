"""Loopback helpers of the org-instance benchmark: a stand-in control plane (JWKS and
heartbeats) and a minimal keep-alive HTTP/1.1 client that costs the shared cores little."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.hazmat.primitives import serialization

from control_plane.signing.jws import sign
from control_plane.signing.keys import LoadedKey, create_key
from orgplane_wire.contract import HEARTBEAT_PATH, org_audience
from orgplane_wire.secret_box import SecretBox


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class StandInControlPlane:
    """JWKS and heartbeat endpoints on loopback; records when each org's first beat arrived."""

    def __init__(self) -> None:
        box = SecretBox("benchmark-secret", purpose="bench keys")
        row = create_key(box, alg="ES256")
        private: Any = serialization.load_pem_private_key(
            box.decrypt(row.private_key_enc), password=None
        )
        self.key = LoadedKey(kid=row.kid, alg="ES256", private_key=private)
        self.jwks = json.dumps({"keys": [row.public_jwk]}).encode()
        self.first_beat: dict[str, float] = {}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:
                return

            def _send(self, body: bytes, **headers: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers.items():
                    self.send_header(name.replace("_", "-"), value)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self._send(outer.jwks, Cache_Control="max-age=300")

            def do_POST(self) -> None:
                arrived = time.monotonic()
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path == HEARTBEAT_PATH:
                    outer.first_beat.setdefault(body["org_id"], arrived)
                answer = {"accepted": True, "config_version": 1, "interval": 10.0, "limits": {}}
                self._send(json.dumps(answer).encode())

        return Handler

    def token(self, org_id: str) -> str:
        claims = {
            "iss": self.url,
            "sub": "bench-user",
            "aud": org_audience(org_id),
            "client_id": "orgplane",
            "scope": "org:read org:write",
            "org_id": org_id,
            "org_slug": "bench",
            "org_role": "member",
            "plan": "free",
            "features": ["chat", "files"],
        }
        return sign(claims, self.key, ttl=3600)[0]

    @contextmanager
    def running(self) -> Iterator[StandInControlPlane]:
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()


class Connection:
    """One keep-alive HTTP/1.1 connection sending the same request again and again."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def request(self, raw: bytes) -> int:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        await self.reader.readexactly(length)
        return int(head[9:12])


async def connect(port: int) -> Connection:
    return Connection(*await asyncio.open_connection("127.0.0.1", port))


def raw_request(method: str, path: str, token: str, body: bytes = b"") -> bytes:
    return (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
