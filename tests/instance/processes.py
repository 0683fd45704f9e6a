"""Real processes for integration tests: a control plane (uvicorn) and org instances
(``python -m org_instance``) on free loopback ports, with orgs seeded straight into the
control plane's SQLite database."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.db.models import Instance, Membership, Org
from control_plane.instances.heartbeat import issue_instance_credential
from control_plane.tokens.grants import ACCESS_TOKEN_TYPE, TOKEN_EXCHANGE_GRANT
from control_plane.users.service import create_user
from tests.support.api import PASSWORD
from tests.support.services import REPO
from tests.support.wait import wait_http

SECRET = "integration-deployment-secret-0123456789"
#: Compiled bytecode shared by the test's child processes (this machine sets
#: PYTHONDONTWRITEBYTECODE, which would make every start recompile everything).
PYCACHE = Path(os.environ.get("TMPDIR", "/tmp")) / "orgplane-test-pycache"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def child_env(**values: str) -> dict[str, str]:
    """The parent's environment without ORGPLANE_* settings, plus ``values``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORGPLANE_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(PYTHONPYCACHEPREFIX=str(PYCACHE), PYTHONUNBUFFERED="1", **values)
    return env


def fresh_python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``code`` (dedented) run by a fresh interpreter with ``args``: for what a process loads,
    which the test process, having imported everything already, cannot show."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it does not exit within 10 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@dataclass
class ControlPlane:
    """A control-plane process on SQLite in ``data_dir``."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def db_url(self) -> str:
        return f"sqlite+aiosqlite:///{self.data_dir / 'cp.db'}"

    def start(self) -> None:
        env = child_env(
            ORGPLANE_MODE="embedded",
            ORGPLANE_DATA_DIR=str(self.data_dir),
            ORGPLANE_DATABASE_URL=self.db_url,
            ORGPLANE_SECRET_KEY=SECRET,
            ORGPLANE_HOST="127.0.0.1",
            ORGPLANE_PORT=str(self.port),
            ORGPLANE_LOG_LEVEL="WARNING",
            # The tests start the instances themselves; a reconciler would provision its own.
            ORGPLANE_RECONCILER_ENABLED="false",
            **self.extra_env,
        )
        log = self.data_dir / "cp.log"
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "control_plane.cli.main", "serve"],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_http(self.url + "/readyz", proc=self.proc, log=log)

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)

    def session(self) -> Any:
        engine = create_async_engine(self.db_url, poolclass=NullPool)
        return engine, AsyncSession(engine, expire_on_commit=False)

    async def seed_org(self, slug: str, owner_email: str) -> dict[str, str]:
        """A user owning a new org with an Instance row; returns ids and the credential."""
        engine, db = self.session()
        try:
            user = await create_user(db, email=owner_email, password=PASSWORD)
            org = Org(slug=slug, name=slug.title())
            db.add(org)
            await db.flush()
            db.add(Membership(user_id=user.id, org_id=org.id, role="owner"))
            db.add(Instance(org_id=org.id, provisioner="test", instance_id=uuid.uuid4().hex))
            await db.flush()
            credential = await issue_instance_credential(db, org_id=org.id)
            await db.commit()
            return {"org_id": org.id, "slug": slug, "email": owner_email, "credential": credential}
        finally:
            await db.close()
            await engine.dispose()

    async def instance_row(self, org_id: str) -> Instance:
        engine, db = self.session()
        try:
            row = await db.get(Instance, org_id)
            assert row is not None
            return row
        finally:
            await db.close()
            await engine.dispose()

    def org_token(self, email: str, slug: str) -> str:
        """Log in and exchange for an org token (RFC 8693) over HTTP."""
        login = httpx.post(
            self.url + "/api/v1/auth/login", json={"email": email, "password": PASSWORD}, timeout=10
        )
        assert login.status_code == 200, login.text
        exchanged = httpx.post(
            self.url + "/oauth/token",
            timeout=10,
            data={
                "grant_type": TOKEN_EXCHANGE_GRANT,
                "subject_token": login.json()["access_token"],
                "subject_token_type": ACCESS_TOKEN_TYPE,
                "audience": f"org:{slug}",
            },
        )
        assert exchanged.status_code == 200, exchanged.text
        return str(exchanged.json()["access_token"])


@dataclass
class OrgInstance:
    """An ``python -m org_instance`` process for one seeded org."""

    org: dict[str, str]
    cp: ControlPlane
    data_dir: Path
    port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def hostname(self) -> str:
        return f"{self.org['slug']}.orgplane.test"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return child_env(
            ORGPLANE_ORG_ID=self.org["org_id"],
            ORGPLANE_ORG_SLUG=self.org["slug"],
            ORGPLANE_CONTROL_PLANE_URL=self.cp.url,
            ORGPLANE_INSTANCE_CREDENTIAL=self.org["credential"],
            ORGPLANE_DATA_DIR=str(self.data_dir),
            ORGPLANE_HOSTNAMES=self.hostname,
            ORGPLANE_BIND_HOST="127.0.0.1",
            ORGPLANE_PORT=str(self.port),
            ORGPLANE_LOG_FORMAT="json",
            **self.extra_env,
        )

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.data_dir / "instance.log"
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "org_instance"],
                cwd=REPO,
                env=self.env(),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_http(self.url + "/readyz", proc=self.proc, log=log)

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)

    def client(self, token: str | None = None, *, host: str | None = None) -> httpx.Client:
        headers = {"Host": host or self.hostname}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)
