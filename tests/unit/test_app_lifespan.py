"""The control plane's lifespan keeps start-up's objects out of the cyclic collector's way
while it serves (``gc.freeze``), and hands them back when it stops (``control_plane/app.py``)."""

from __future__ import annotations

import gc

from control_plane.settings import Settings
from tests.interop.servers import app_in_this_loop, runtime_of_app


def _collectable(obj: object) -> bool:
    """Whether the cyclic collector's generations hold ``obj`` (frozen objects are in none)."""
    return any(o is obj for o in gc.get_objects())


async def test_start_up_objects_are_frozen_while_serving_and_thawed_after(
    settings: Settings,
) -> None:
    async with app_in_this_loop(settings) as (app, client):
        runtime = runtime_of_app(app)
        assert (await client.get("/healthz")).status_code == 200
        assert gc.get_freeze_count() > 0
        assert not _collectable(runtime)
        assert not _collectable(app)
        made_now = [object()]  # a request's objects stay in the collector's generations
        assert _collectable(made_now)
    assert gc.get_freeze_count() == 0
    assert _collectable(runtime)
