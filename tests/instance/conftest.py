"""Fixtures of the org-instance tests: a signing key, a fake control plane, in-process apps."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from org_instance.app import create_app
from org_instance.runtime import InstanceRuntime
from tests.instance.helpers import FakeControlPlane, Signer, instance_config

HOST = "acme.orgplane.test"


@pytest.fixture
def signer() -> Signer:
    return Signer()


@pytest.fixture
def cp(signer: Signer) -> FakeControlPlane:
    return FakeControlPlane(signers=[signer])


InstanceFactory = Callable[..., Any]


@pytest.fixture
def make_instance(tmp_path: Path, cp: FakeControlPlane) -> InstanceFactory:
    """``async with make_instance(**config) as client``: a running in-process instance."""

    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[AsyncTestClient[Any]]:
        data_dir = overrides.pop("data_dir", tmp_path / "instance")
        config = instance_config(data_dir, **overrides)
        app = create_app(config, http=cp.client())
        async with AsyncTestClient(app, base_url=f"http://{HOST}") as client:
            yield client

    return start


@pytest.fixture
async def instance(make_instance: InstanceFactory) -> AsyncIterator[AsyncTestClient[Any]]:
    """A running instance with default config."""
    async with make_instance() as client:
        yield client


def runtime_of(client: AsyncTestClient[Any]) -> InstanceRuntime:
    runtime: InstanceRuntime = client.app.state.instance
    return runtime


@pytest.fixture
def org_id(instance: AsyncTestClient[Any]) -> str:
    return runtime_of(instance).config.org_id
