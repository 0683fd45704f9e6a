"""A real control plane and one real org instance, as processes, for the conformance suite.

Started once per test process (module workers under xdist get their own, on free ports and in
their own temporary directories). Both write their logs under the session's base temporary
directory, where the session-wide scan (tests/support/logscan.py) fails the run on any unhandled
exception, whatever test caused it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from tests.instance.processes import ControlPlane, OrgInstance
from tests.support.api import PASSWORD

#: A token older than this is minted again: the suite can run for longer than an org token
#: lives (5 minutes) on a loaded machine.
TOKEN_REUSE_SECONDS = 60.0


@dataclass
class Platform:
    """The two services and a caller's credentials for each (fresh: see :meth:`_fresh`)."""

    cp: ControlPlane
    instance: OrgInstance
    email: str
    _minted: dict[str, tuple[float, str]] = field(default_factory=dict, repr=False)

    @property
    def instance_host(self) -> str:
        return self.instance.hostname

    @property
    def access_token(self) -> str:
        """A control-plane access token of the org's owner."""
        return self._fresh("access", self._login)

    @property
    def org_token(self) -> str:
        """An org token of the org's owner for the instance."""
        return self._fresh("org", lambda: self.cp.org_token(self.email, self.instance.org["slug"]))

    def _login(self) -> str:
        login = httpx.post(
            self.cp.url + "/api/v1/auth/login",
            json={"email": self.email, "password": PASSWORD},
            timeout=10,
        )
        assert login.status_code == 200, login.text
        return str(login.json()["access_token"])

    def _fresh(self, kind: str, mint: Callable[[], str]) -> str:
        now = time.monotonic()
        minted = self._minted.get(kind)
        if minted is None or now - minted[0] > TOKEN_REUSE_SECONDS:
            minted = self._minted[kind] = (now, mint())
        return minted[1]


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """The platform (its logs are scanned at the end of the session)."""
    root = tmp_path_factory.mktemp("conformance")
    cp = ControlPlane(root / "cp")
    cp.data_dir.mkdir()
    cp.start()
    instance: OrgInstance | None = None
    try:
        org = asyncio.run(cp.seed_org("conform", "owner@conform.test"))
        instance = OrgInstance(org, cp, root / "instance")
        instance.start()
        yield Platform(cp=cp, instance=instance, email=org["email"])
    finally:
        if instance is not None:
            instance.stop()
        cp.stop()
