"""Shared fixtures: settings, a database per test (SQLite and PostgreSQL), an app client."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from control_plane.db.engine import make_engine
from control_plane.db.migrate import upgrade
from control_plane.security import passwords
from control_plane.settings import Settings
from tests.support import kubecluster, logscan
from tests.support.api import add_user, login
from tests.support.apps import lent_app
from tests.support.db import LaterDrops, create_postgres_database, create_template
from tests.support.services import docker_available, need, postgres_available

TEST_SECRET = "test-deployment-secret-not-for-production"

# Compiled bytecode is written and shared. Where PYTHONDONTWRITEBYTECODE is set (as on the CI
# machines), every control plane, instance and CLI process a test starts compiled the project's
# modules again: ~2.8 s of CPU per control-plane start, 15 of them in one crash test alone.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = False

# Password hashes made by the tests' own processes are cheap (scrypt N=2**4 instead of 2**14,
# ~0.1 ms instead of ~35 ms): the suite creates and logs in users thousands of times, and what
# it checks is the flow, not the cost. Control planes the tests start as processes keep the
# production cost, and so does the dummy hash an unknown email is checked against.
passwords.COST = (2**4, 8, 1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow tests first.

    Under xdist the suite takes as long as its busiest worker, and the slow tests (a minute or
    more each) are what decides that: started first, they run beside the many short ones instead
    of after them. The sort is stable.

    ``make test`` runs ``--dist loadgroup`` with no groups: every test is its own unit, handed in
    this order to the next free worker (``--dist load`` would hand each worker a chunk of a
    quarter of its share at once, all the slow tests to the first worker). A module- or
    session-scoped fixture is therefore made once in each worker that runs one of its tests;
    the one-node Kubernetes cluster is shared by the workers instead (``kubecluster.shared``).
    (``xdist_group`` marks would not help here: xdist 3.8 renames ``item._nodeid`` to carry the
    group, and pytest 9 reads ``item._id``, so the groups are ignored.)
    """
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


_LOG_FINDINGS = pytest.StashKey[str]()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """No unhandled exception in any log the session's processes wrote (tests/support/logscan).

    Under xdist this runs in the controller, once every worker has finished and stopped its
    processes: the workers' base temporary directories are inside the controller's.
    """
    config = session.config
    # Workers leave it to the controller; a collection ran nothing (and making a base temporary
    # directory for it would be a write outside the tree, scripts/check-self-contained.py).
    if hasattr(config, "workerinput") or config.option.collectonly:
        return
    factory = getattr(config, "_tmp_path_factory", None)
    if factory is None:
        return
    root = factory.getbasetemp()
    kubecluster.stop_shared(root)  # the workers' shared cluster, once every worker is done
    findings = logscan.unhandled_exceptions(root)
    if findings:
        config.stash[_LOG_FINDINGS] = logscan.report(findings, root)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    message = config.stash.get(_LOG_FINDINGS, "")
    if message:
        terminalreporter.section("unhandled exceptions in the logs", sep="=", red=True)
        terminalreporter.write_line(message)


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str | None]:
    """A migrated template database, made once per session when PostgreSQL is there."""
    if not postgres_available():
        yield None
        return
    yield asyncio.run(create_template())


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite database, made once per worker; each test gets a copy (migrating
    costs 40-120 ms a test, a copy about one)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "control-plane.db"
    engine = make_engine(f"sqlite+aiosqlite:///{path}")

    async def migrate() -> None:
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()

    asyncio.run(migrate())
    return path


@pytest.fixture(scope="session")
def later_drops() -> Iterator[LaterDrops]:
    """Drops the tests' PostgreSQL databases in the background (tests/support/db.py)."""
    drops = LaterDrops()
    try:
        yield drops
    finally:
        drops.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_backend(request: pytest.FixtureRequest) -> str:
    """Each API test runs on SQLite and on PostgreSQL."""
    return str(request.param)


@pytest.fixture
async def database_url(
    db_backend: str,
    tmp_path: Path,
    postgres_template: str | None,
    sqlite_template: Path,
    later_drops: LaterDrops,
) -> AsyncIterator[str]:
    """A fresh, migrated database of the requested backend."""
    if db_backend == "sqlite":
        path = tmp_path / "control-plane.db"
        shutil.copyfile(sqlite_template, path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    need("PostgreSQL", postgres_template is not None)
    name, url = await create_postgres_database()
    try:
        yield url
    finally:
        later_drops.drop(name)


def settings_env(tmp_path: Path, database_url: str, **extra: str) -> dict[str, str]:
    """Environment for a control plane in ``tmp_path`` on ``database_url``."""
    return {
        "ORGPLANE_MODE": "embedded",
        "ORGPLANE_DATA_DIR": str(tmp_path / "data"),
        "ORGPLANE_DATABASE_URL": database_url,
        "ORGPLANE_SECRET_KEY": TEST_SECRET,
        "ORGPLANE_LOG_LEVEL": "WARNING",
        # API tests drive the database only; the reconciler tests turn the loop on.
        "ORGPLANE_RECONCILER_ENABLED": "false",
        # Its own deployment: labels, process markers and Redis keys (the heartbeat reader's
        # lock) of tests running at the same time on other workers never meet.
        "ORGPLANE_DEPLOYMENT_ID": f"t-{uuid.uuid4().hex[:10]}",
        **extra,
    }


@pytest.fixture
def make_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str) -> Any:
    """Build Settings from a clean ``ORGPLANE_*`` environment plus overrides."""

    def build(**extra: str) -> Settings:
        for key in list(os.environ):
            if key.startswith("ORGPLANE_") and not key.startswith("ORGPLANE_TEST_"):
                monkeypatch.delenv(key)
        for key, value in settings_env(tmp_path, database_url, **extra).items():
            monkeypatch.setenv(key, value)
        return Settings()

    return build


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    """Default test settings."""
    result: Settings = make_settings()
    return result


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[AsyncTestClient[Any]]:
    """An HTTP client bound to a running control-plane app: built for ``settings`` or, when
    only the database, data directory and deployment id differ, one this worker built before,
    with a fresh runtime and state (tests/support/apps.py)."""
    with lent_app(settings) as app:
        async with AsyncTestClient(app, base_url="http://127.0.0.1:8080") as test_client:
            yield test_client


@pytest.fixture
async def admin(client: AsyncTestClient[Any]) -> dict[str, str]:
    """Authorization headers of a platform admin."""
    await add_user(client, "root@example.com", admin=True)
    return await login(client, "root@example.com")


@pytest.fixture(scope="session", autouse=True)
def stop_leftover_instances(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Safety net: at the end of the session, stop local org instances whose data lives under
    this session's temporary directory (a test that failed before its own teardown)."""
    yield
    base = str(tmp_path_factory.getbasetemp())
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            if b"orgplane_instance=" not in cmdline:
                continue
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        data_dir = next(
            (
                e[len(b"ORGPLANE_DATA_DIR=") :]
                for e in environ
                if e.startswith(b"ORGPLANE_DATA_DIR=")
            ),
            b"",
        )
        if data_dir.decode(errors="replace").startswith(base):
            with contextlib.suppress(OSError):
                os.kill(int(proc.name), signal.SIGTERM)


@pytest.fixture(scope="session")
def kube_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[kubecluster.Cluster]:
    """A real one-node Kubernetes v1.20.2 (tests/support/kubecluster.py), started once per
    session from the binaries scripts/k8s/build.sh cached, and stopped at the end; or the
    cluster ``ORGPLANE_TEST_KUBECONFIG`` names. Missing binaries fail under CI, skip elsewhere.
    Under xdist the first worker that needs it starts it and the others use it
    (``kubecluster.shared``); the controller stops it when the session ends."""
    own = os.environ.get("ORGPLANE_TEST_KUBECONFIG")
    if own:
        yield kubecluster.external(own)
        return
    need(kubecluster.missing() or "", kubecluster.missing() is None)
    need("Docker", docker_available())
    from tests.provisioners.harness import INSTANCE_IMAGE

    present = subprocess.run(["docker", "image", "inspect", INSTANCE_IMAGE], capture_output=True)
    need(f"the image {INSTANCE_IMAGE} (scripts/build-images.sh)", present.returncode == 0)
    if os.environ.get("PYTEST_XDIST_WORKER"):  # one cluster for every worker, stopped at the end
        yield kubecluster.shared(tmp_path_factory.getbasetemp().parent, images=(INSTANCE_IMAGE,))
        return
    cluster = kubecluster.start(images=(INSTANCE_IMAGE,))
    try:
        yield cluster
    finally:
        kubecluster.stop(cluster)
