"""``orgplane login --sso``: sign in through the browser, as ``gh auth login --web`` does.

The CLI is the control plane's built-in public client ``orgplane-cli``
(``control_plane.oidc.builtin_clients``). It uses the loopback redirect of RFC 8252: it
listens on ``127.0.0.1`` on a port the system picks (§7.3), sends the browser to the control
plane's ``/oauth/authorize`` with PKCE (S256) and a random ``state``, waits for the browser to
come back with the code, and redeems it. The answer is the session a password login starts (an
access token and a refresh token), stored the same way. The browser goes through the normal
sign-in page of the control plane, whatever it offers (password, two-factor, passkeys, external
identity providers). ``--no-browser`` prints the URL instead of opening a browser.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import secrets
import sys
import threading
import time
import webbrowser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import parse_qs, urlencode, urlsplit

from control_plane.cli.credentials import Session
from control_plane.cli.main import CliError
from control_plane.cli.session import ControlPlane, platform_words

CLI_CLIENT_ID: Final = "orgplane-cli"
CALLBACK_PATH: Final = "/callback"
#: How long the CLI waits for the browser to come back.
WAIT_SECONDS: Final = 300.0
DONE_PAGE: Final = (
    b"<!doctype html><html lang='en'><meta charset='utf-8'><title>orgplane</title>"
    b"<p>You are signed in to the orgplane CLI. You can close this tab.</p></html>"
)
FAILED_PAGE: Final = (
    b"<!doctype html><html lang='en'><meta charset='utf-8'><title>orgplane</title>"
    b"<p>The sign-in did not complete; see the terminal.</p></html>"
)


class _Callback:
    """What the browser brought back (the first matching request only)."""

    def __init__(self, state: str) -> None:
        self.state = state
        self.params: dict[str, str] | None = None
        self.arrived = threading.Event()


def _handler(callback: _Callback) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            ours = parts.path == CALLBACK_PATH and query.get("state") == callback.state
            if not ours or callback.arrived.is_set():
                self.send_response(404)
                self.end_headers()
                return
            callback.params = query
            callback.arrived.set()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(DONE_PAGE if "code" in query else FAILED_PAGE)

        def log_message(self, format: str, *args: Any) -> None:
            return  # the request line holds the code: never print it

    return Handler


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _redeem(plane: ControlPlane, code: str, redirect_uri: str, verifier: str) -> dict[str, Any]:
    answer = plane.call(
        "POST",
        "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "client_id": CLI_CLIENT_ID,
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        },
    )
    try:
        body = answer.json()
    except ValueError:
        body = None
    if answer.status_code != 200 or not isinstance(body, dict) or "refresh_token" not in body:
        detail = body.get("error_description") if isinstance(body, dict) else None
        raise CliError(f"login failed: {detail or f'HTTP {answer.status_code}'}")
    return body


def _email(plane: ControlPlane, access_token: str) -> str:
    answer = plane.call("GET", "/api/v1/me", headers={"Authorization": f"Bearer {access_token}"})
    try:
        email = answer.json().get("email", "")
    except (ValueError, AttributeError):
        email = ""
    return str(email)


def sso_login(args: argparse.Namespace) -> None:
    """Log in through the browser (loopback redirect, PKCE); keep the refresh token."""
    plane = ControlPlane(args.url)
    verifier, challenge = _pkce()
    callback = _Callback(secrets.token_urlsafe(24))
    server = ThreadingHTTPServer(("127.0.0.1", args.port), _handler(callback))
    redirect_uri = f"http://127.0.0.1:{server.server_address[1]}{CALLBACK_PATH}"
    url = f"{plane.url}/oauth/authorize?" + urlencode(
        {
            "client_id": CLI_CLIENT_ID,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "scope": "openid email",
            "state": callback.state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        print(f"Open this URL in a browser to log in:\n{url}", flush=True)
        if not args.no_browser and not webbrowser.open(url):
            print("(no browser could be opened; open the URL yourself)", file=sys.stderr)
        deadline = time.monotonic() + args.timeout
        if not callback.arrived.wait(max(0.0, deadline - time.monotonic())):
            raise CliError(f"no answer from the browser within {int(args.timeout)} seconds")
    finally:
        server.shutdown()
        server.server_close()
    params = callback.params or {}
    if "code" not in params:
        reason = params.get("error_description") or params.get("error") or "no code"
        raise CliError(f"login failed: {reason}")
    body = _redeem(plane, params["code"], redirect_uri, verifier)
    email = _email(plane, body["access_token"])
    Session(
        url=plane.url,
        email=email,
        refresh_token=body["refresh_token"],
        access_token=body["access_token"],
        access_expires_at=time.time() + int(body["expires_in"]),
        words=platform_words(plane),
    ).save()
    print(f"logged in to {plane.url} as {email}")
