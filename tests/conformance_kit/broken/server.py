"""A deliberately broken org instance, standard library only, for the conformance kit's tests.

It speaks the contract (probes, ES256 org tokens from the JWKS, the Host check, heartbeats with
backoff, a file in the data directory, SIGTERM) except where ``BROKEN_MODE`` says:

* ``accept-any-org``: the token's audience is not checked, so another org's token is accepted;
* ``no-heartbeat``: it never sends a heartbeat;
* ``fixed-interval``: it beats every ``ORGPLANE_HEARTBEAT_INTERVAL`` whatever the control plane
  answers, and does not back off while it is down;
* ``crash``: it exits with status 3 as it starts;
* ``wipe-data``: it empties its data directory as it starts (a restart loses everything);
* ``ignore-sigterm``: it sets no SIGTERM handler (as PID 1 the signal is then ignored);
* ``outside-namespace``: given a Redis URL, it writes a key in its org's namespace and one
  outside it (which the org's ACL user may not).

Modes combine, comma-separated; any other value (or none) breaks nothing.
"""

from __future__ import annotations

import base64
import json
import os
import random
import signal
import socket
import sys
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from ecdsa_p256 import verify

ENV = os.environ
MODES = set(ENV.get("BROKEN_MODE", "").split(","))
LEEWAY = 30
PROBES = ("/healthz", "/readyz")
STARTED = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _names(value: str) -> set[str]:
    return {part.strip().lower() for part in value.split(",") if part.strip()}


ALLOWED_HOSTS = (
    _names(ENV.get("ORGPLANE_HOSTNAMES", ""))
    | _names(ENV.get("ORGPLANE_INTERNAL_HOSTS", ""))
    | {"localhost", "127.0.0.1"}
)


def _b64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


class Keys:
    """The JWKS, fetched again when a token names an unknown kid (at most once a second)."""

    def __init__(self, url: str) -> None:
        self.url, self.keys, self.fetched = url, {}, 0.0
        self.lock = threading.Lock()

    def get(self, kid: str) -> tuple[int, int] | None:
        with self.lock:
            if kid not in self.keys and time.monotonic() - self.fetched > 1.0:
                self.fetched = time.monotonic()
                try:
                    with urllib.request.urlopen(self.url, timeout=5) as answer:
                        document = json.load(answer)
                    self.keys = {
                        k["kid"]: (
                            int.from_bytes(_b64(k["x"]), "big"),
                            int.from_bytes(_b64(k["y"]), "big"),
                        )
                        for k in document.get("keys", [])
                        if k.get("kty") == "EC" and k.get("crv") == "P-256"
                    }
                except (OSError, ValueError, KeyError) as exc:
                    print(f"JWKS fetch failed: {exc}", file=sys.stderr)
            return self.keys.get(kid)


KEYS = Keys(ENV.get("ORGPLANE_JWKS_URL", ""))


def token_ok(token: str) -> bool:
    """Whether ``token`` is a valid org token for this org (but see ``accept-any-org``)."""
    try:
        head, body, sig = token.split(".")
        header, claims = json.loads(_b64(head)), json.loads(_b64(body))
        if header.get("alg") != "ES256" or header.get("typ") not in (
            "at+jwt",
            "application/at+jwt",
        ):
            return False
        key = KEYS.get(str(header.get("kid")))
        if key is None or not verify(*key, f"{head}.{body}".encode(), _b64(sig)):
            return False
        now = time.time()
        if claims["exp"] + LEEWAY < now or claims["nbf"] - LEEWAY > now:
            return False
        if claims["iss"] != ENV.get("ORGPLANE_ISSUER"):
            return False
        if "accept-any-org" not in MODES and claims["aud"] != ENV.get("ORGPLANE_AUDIENCE"):
            return False
        return isinstance(claims["sub"], str)
    except (ValueError, KeyError, TypeError):
        return False


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_: object) -> None:
        return

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path in PROBES:
            self._send(200, {"status": "ok"})
            return
        host = self.headers.get("Host", "").lower().rsplit(":", 1)[0]
        if host not in ALLOWED_HOSTS:
            self._send(421, {"status": 421, "code": "misdirected_request"})
            return
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token_ok(token.strip()):
            self._send(401, {"status": 401, "code": "invalid_token"})
            return
        self._send(200, {"org_id": ENV.get("ORGPLANE_ORG_ID"), "path": path})


def heartbeats(stop: threading.Event) -> None:
    """POST a heartbeat every interval; on failure double the wait up to 8 intervals (but see
    ``fixed-interval``)."""
    fixed = "fixed-interval" in MODES
    url = ENV["ORGPLANE_CONTROL_PLANE_URL"].rstrip("/") + "/api/v1/instances/heartbeat"
    interval, failures, seq = float(ENV.get("ORGPLANE_HEARTBEAT_INTERVAL", "10")), 0, 0
    while not stop.is_set():
        seq += 1
        body = {
            "org_id": ENV["ORGPLANE_ORG_ID"],
            "instance_id": ENV["ORGPLANE_INSTANCE_ID"],
            "version": "broken-1",
            "started_at": STARTED,
            "status": "ok",
            "seq": seq,
            "db_ok": True,
            "redis_ok": True,
            "usage": {"requests": 0},
        }
        request = urllib.request.Request(
            url,
            data=json.dumps(body).encode(),
            headers={
                "Authorization": f"Bearer {ENV['ORGPLANE_INSTANCE_CREDENTIAL']}",
                "Content-Type": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                answered = float(json.load(answer).get("interval", interval))
            interval, failures = interval if fixed else answered, 0
        except (OSError, ValueError):
            failures += 0 if fixed else 1
        wait = min(max(interval, 8 * interval), interval * 2**failures)
        stop.wait(wait * random.uniform(0.9, 1.1))


def use_redis(url: str, namespace: str) -> None:
    """Write a key in the namespace (and, in ``outside-namespace`` mode, one outside it) over
    RESP, as the org's user."""
    parts = urllib.parse.urlsplit(url)
    user = urllib.parse.unquote(parts.username or "")
    password = urllib.parse.unquote(parts.password or "")
    keys = [f"{namespace}:broken"] + (["broken-outside"] if "outside-namespace" in MODES else [])
    commands = [("AUTH", user, password)] + [("SET", key, "1") for key in keys]
    with socket.create_connection((parts.hostname, parts.port or 6379), timeout=5) as conn:
        for command in commands:
            words = [word.encode() for word in command]
            frame = b"*%d\r\n" % len(words)
            frame += b"".join(b"$%d\r\n%s\r\n" % (len(word), word) for word in words)
            conn.sendall(frame)
            print(
                f"redis {command[0]} {command[1] if command[0] == 'SET' else ''}:",
                conn.recv(512).decode(errors="replace").strip(),
                flush=True,
            )


def main() -> None:
    if "crash" in MODES:
        print("broken instance: crashing on purpose", flush=True)
        sys.exit(3)
    data = Path(ENV.get("ORGPLANE_DATA_DIR", "/data"))
    if "wipe-data" in MODES:
        for path in data.iterdir():
            if path.is_file():
                path.unlink()
    state = data / "broken-instance.json"
    starts = json.loads(state.read_text())["starts"] + 1 if state.exists() else 1
    state.write_text(json.dumps({"starts": starts}))
    server = ThreadingHTTPServer(
        (ENV.get("ORGPLANE_BIND_HOST", "0.0.0.0"), int(ENV.get("ORGPLANE_PORT", "8000"))), Handler
    )
    server.daemon_threads = True
    stop = threading.Event()
    if "ignore-sigterm" not in MODES:
        signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    if ENV.get("ORGPLANE_REDIS_URL"):
        use_redis(ENV["ORGPLANE_REDIS_URL"], ENV["ORGPLANE_REDIS_NAMESPACE"])
    if "no-heartbeat" not in MODES:
        threading.Thread(target=heartbeats, args=(stop,), daemon=True).start()
    print(f"broken instance (mode {ENV.get('BROKEN_MODE') or 'none'}) start {starts}", flush=True)
    server.serve_forever()
    stop.set()
    server.server_close()


if __name__ == "__main__":
    main()
