"""The kit's stand-in for the control plane: the JWKS and the heartbeat endpoint.

A small threaded HTTP server (standard library) that serves the kit's JWK set at
``/.well-known/jwks.json`` and answers ``POST`` :data:`~orgplane_wire.contract.HEARTBEAT_PATH`
as the control plane would (``HeartbeatAnswer`` with the kit's short interval), or ``503``
while :attr:`FakeControlPlane.available` is off. Every heartbeat is recorded with its arrival
time, whether it carried the right Bearer credential, and its body.
"""

from __future__ import annotations

import hmac
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from orgplane_wire.contract import CONTRACT_VERSION, HEARTBEAT_PATH

JWKS_PATH = "/.well-known/jwks.json"
MAX_BODY = 65_536
PROBLEM = "application/problem+json"


@dataclass(frozen=True)
class Beat:
    """One heartbeat as it arrived."""

    at: float  #: ``time.monotonic()`` on arrival
    credential_ok: bool
    body: Any  #: the decoded JSON body, or None when it was not JSON
    answered: int  #: the status the kit answered


class FakeControlPlane:
    """JWKS and heartbeats on ``host:port`` (port 0: any free one) in a daemon thread."""

    def __init__(
        self,
        *,
        jwks: dict[str, Any],
        credential: str,
        interval: float,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.jwks = jwks
        self.credential = credential
        self.interval = interval
        self.available = True
        self.beats: list[Beat] = []
        self.jwks_fetches = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the server."""
        host, port = self._server.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else str(host)
        return f"http://{name}:{port}"

    def __enter__(self) -> FakeControlPlane:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def snapshot(self) -> list[Beat]:
        """The heartbeats so far."""
        with self._lock:
            return list(self.beats)

    def record(self, beat: Beat) -> None:
        with self._lock:
            self.beats.append(beat)

    def answer(self) -> dict[str, Any]:
        """What an accepted heartbeat gets back."""
        return {
            "accepted": True,
            "config_version": 1,
            "interval": self.interval,
            "limits": {},
            "contract_version": CONTRACT_VERSION,
        }


def _handler(cp: FakeControlPlane) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_: Any) -> None:  # quiet: the report holds what matters
            return

        def _send(self, status: int, body: Any, content_type: str = "application/json") -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "max-age=60")
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path.split("?")[0] == JWKS_PATH:
                cp.jwks_fetches += 1
                self._send(200, cp.jwks)
                return
            self._send(404, {"status": 404, "code": "not_found"}, PROBLEM)

        def do_POST(self) -> None:
            arrived = time.monotonic()
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(min(length, MAX_BODY)) if length > 0 else b""
            if self.path.split("?")[0] != HEARTBEAT_PATH:
                self._send(404, {"status": 404, "code": "not_found"}, PROBLEM)
                return
            presented = self.headers.get("Authorization", "")
            ok = hmac.compare_digest(presented.encode(), f"Bearer {cp.credential}".encode())
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            status = 200 if cp.available and ok else (503 if not cp.available else 401)
            version = body.get("contract_version", 1) if isinstance(body, dict) else 1
            if status == 200 and version != CONTRACT_VERSION:
                status = 409
            cp.record(Beat(at=arrived, credential_ok=ok, body=body, answered=status))
            if status == 200:
                self._send(200, cp.answer())
            elif status == 409:
                problem = {"status": 409, "code": "contract_version_unsupported"}
                self._send(409, {**problem, "supported": [CONTRACT_VERSION]}, PROBLEM)
            else:
                code = "unavailable" if status == 503 else "invalid_credential"
                self._send(status, {"status": status, "code": code}, PROBLEM)

    return Handler
