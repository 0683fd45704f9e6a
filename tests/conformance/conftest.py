"""A real control plane and one real org instance, as processes, for the conformance suite.

Started once per test process (module workers under xdist get their own, on free ports and in
their own temporary directories). On the way out both logs are read: a traceback or an
``unhandled error`` in either fails the suite, whatever test caused it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.instance.processes import ControlPlane, OrgInstance
from tests.support.api import PASSWORD

#: What the logs must never hold after the suite: unhandled exceptions.
LOG_FAILURES = ("Traceback (most recent call last)", "unhandled error", "Exception in ASGI")


@dataclass
class Platform:
    """The two services and a caller's credentials for each."""

    cp: ControlPlane
    instance: OrgInstance
    access_token: str
    org_token: str

    @property
    def instance_host(self) -> str:
        return self.instance.hostname


def unhandled_in_logs(*logs: Path) -> list[str]:
    """The log lines that report an unhandled exception."""
    found = []
    for path in logs:
        text = path.read_text(errors="replace") if path.exists() else ""
        found += [line for line in text.splitlines() if any(f in line for f in LOG_FAILURES)]
    return found


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """The platform; after the session, no unhandled exception in either log."""
    root = tmp_path_factory.mktemp("conformance")
    cp = ControlPlane(root / "cp")
    cp.data_dir.mkdir()
    cp.start()
    instance: OrgInstance | None = None
    try:
        org = asyncio.run(cp.seed_org("conform", "owner@conform.test"))
        instance = OrgInstance(org, cp, root / "instance")
        instance.start()
        login = httpx.post(
            cp.url + "/api/v1/auth/login",
            json={"email": org["email"], "password": PASSWORD},
            timeout=10,
        )
        assert login.status_code == 200, login.text
        yield Platform(
            cp=cp,
            instance=instance,
            access_token=login.json()["access_token"],
            org_token=cp.org_token(org["email"], org["slug"]),
        )
    finally:
        if instance is not None:
            instance.stop()
        cp.stop()
    failures = unhandled_in_logs(cp.data_dir / "cp.log", root / "instance" / "instance.log")
    assert not failures, "unhandled exceptions in the logs:\n" + "\n".join(failures[:20])
