"""A real OpenID provider for the SSO tests: the npm package ``oidc-provider`` (OpenID
certified) run by Node.js from ``tests/sso/idp/server.mjs``.

The package is installed once into :data:`NPM_DIR` (``npm install``; nothing is fetched when
that version is there already: ``.ci/run`` does the same). Each provider reads its client and
accounts from a JSON file, again at every lookup, so a test changes someone's claims between two
sign-ins with :meth:`Idp.set_account`. :func:`sign_in_headless` walks the provider's redirect
flow with plain HTTP, as a browser would, for the service-level tests.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urljoin

import httpx

from tests.support.services import REPO, need

VERSION: Final = "9.13.3"
NPM_DIR: Final = Path(os.environ.get("ORGPLANE_TEST_NPM_CACHE", "/var/cache/orgplane/npm"))
MODULES: Final = NPM_DIR / "oidc-provider" / "node_modules"
SCRIPT: Final = REPO / "tests" / "sso" / "idp" / "server.mjs"
#: This suite's loopback ports (the IdP and the live control plane take theirs from here).
PORTS: Final = range(47600, 47700)
CLIENT_ID: Final = "orgplane-test"
CLIENT_SECRET: Final = "test-client-secret-0123456789abcdef"


def installed_version() -> str | None:
    """The version of oidc-provider in the cache, or None."""
    try:
        package = json.loads((MODULES / "oidc-provider" / "package.json").read_text())
    except (OSError, ValueError):
        return None
    return str(package.get("version"))


def ensure_oidc_provider() -> None:
    """Install oidc-provider :data:`VERSION` into the cache unless it is there (fails under CI,
    skips elsewhere, when Node.js or npm is missing)."""
    need("Node.js", shutil.which("node") is not None)
    if installed_version() == VERSION:
        return
    need("npm", shutil.which("npm") is not None)
    target = MODULES.parent
    target.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "npm",
            "install",
            "--no-audit",
            "--no-fund",
            "--no-save",
            "--loglevel=error",
            "--prefix",
            str(target),
            f"oidc-provider@{VERSION}",
        ],
        check=True,
        timeout=300,
        capture_output=True,
    )


def free_port() -> int:
    """A free loopback port of :data:`PORTS`, tried in random order (xdist workers start
    servers at the same time; the binder may still lose a race: :func:`run_idp` retries)."""
    for port in random.sample(PORTS, len(PORTS)):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 47600-47699")


@dataclass
class Idp:
    """A running provider: its issuer, discovery URL and the file it reads."""

    issuer: str
    state_file: Path
    state: dict[str, Any]

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def set_account(self, account_id: str, **claims: Any) -> None:
        """Add or replace an account (its claims take effect at its next sign-in)."""
        self.state["accounts"][account_id] = claims
        self.state_file.write_text(json.dumps(self.state))


async def _start(tmp: Path, state_file: Path) -> tuple[subprocess.Popen[bytes], int]:
    """The provider's process and port. It is up once it has said so in its log (not when
    the port answers: that may be another worker's server that won the port)."""
    env = {**os.environ, "OIDC_PROVIDER_MODULES": str(MODULES)}
    for attempt in range(5):
        port = free_port()
        log_path = tmp / f"idp-{attempt}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                ["node", str(SCRIPT), str(port), str(state_file)], stdout=log, stderr=log, env=env
            )
        for _ in range(150):
            if process.poll() is not None:
                break  # most likely the port was taken meanwhile: another one
            if b"listening" in log_path.read_bytes():
                return process, port
            await asyncio.sleep(0.1)
        else:
            process.kill()
            raise RuntimeError(f"the test IdP did not start in 15 s: {log_path.read_text()}")
    raise RuntimeError(f"the test IdP did not start: {log_path.read_text()}")


@asynccontextmanager
async def run_idp(tmp: Path, redirect_uris: list[str]) -> AsyncIterator[Idp]:
    """Start a provider on a free port of this suite whose client redirects to
    ``redirect_uris``; stopped (by its pid) on the way out."""
    ensure_oidc_provider()
    state: dict[str, Any] = {
        "client": {
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "redirect_uris": redirect_uris,
        },
        "accounts": {},
    }
    state_file = tmp / "idp-state.json"
    state_file.write_text(json.dumps(state))
    process, port = await _start(tmp, state_file)
    try:
        yield Idp(f"http://127.0.0.1:{port}", state_file, state)
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()


async def sign_in_headless(authorize_url: str, account: str, redirect_prefix: str) -> str:
    """Follow the provider's sign-in for ``account`` like a browser; answers the URL it sends
    the browser back to (the callback's, with ``code`` and ``state``)."""
    async with httpx.AsyncClient(timeout=10) as http:
        url = authorize_url
        for _ in range(10):
            if url.startswith(redirect_prefix):
                return url
            answer = await http.get(url)
            if answer.status_code == 200 and "/interaction/" in url:
                answer = await http.post(url, data={"login": account})
            if answer.status_code not in (302, 303):
                raise AssertionError(f"{url}: {answer.status_code} {answer.text[:300]}")
            url = urljoin(url, answer.headers["location"])
    raise AssertionError("too many redirects at the test IdP")
