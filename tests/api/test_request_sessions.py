"""A request refused by a dependency gives its database connection back at once.

When a dependency raises while Litestar resolves a batch of them in a task group (``actor``
and ``access`` of ``POST /api/v1/orgs/{org_ref}/suspend``), Litestar drops the cleanup of the
``db`` generator: without ``CloseRequestSessions`` each such request held a pooled connection
until the cyclic garbage collector ran, and a burst emptied the pool (503
``database_unavailable``, seen in the cross-org generator under load).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from tests.support.api import assert_problem, runtime_of
from tests.support.orgs import user

REFUSED = 6


@pytest.fixture
def no_cyclic_gc() -> Iterator[None]:
    """The cyclic collector off, so only what the app itself closes counts."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.mark.usefixtures("no_cyclic_gc")
async def test_refused_requests_do_not_keep_pooled_connections(
    client: AsyncTestClient[Any],
) -> None:
    alice = await user(client, "alice@example.com")
    pool = runtime_of(client).engine.pool
    before = pool.checkedout()  # type: ignore[attr-defined]
    for _ in range(REFUSED):
        assert_problem(
            await client.post("/api/v1/orgs/nowhere/suspend", headers=alice), 404, "org_not_found"
        )
    assert pool.checkedout() <= before  # type: ignore[attr-defined]
    answered = await client.get("/api/v1/me/orgs", headers=alice)
    assert answered.status_code == 200, answered.text
