"""The apps tests/support/apps.py lends to the ``client`` fixture: reused only where
``create_app`` would build the same app, and never carrying one test's runtime or state into the
next."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from tests.support.api import runtime_of
from tests.support.apps import lent_app


async def test_a_lent_app_starts_on_each_tests_own_settings_with_fresh_state(
    make_settings: Any, tmp_path: Path
) -> None:
    first = make_settings()
    with lent_app(first) as app:
        async with AsyncTestClient(app) as client:
            assert runtime_of(client).settings is first
            assert (await client.get("/healthz")).status_code == 200
            app.state.left_behind = True
            metrics = app.state.metrics
    # Another test's settings: its own data directory and deployment id (database alike).
    second = make_settings(ORGPLANE_DATA_DIR=str(tmp_path / "other"))
    assert second.provisioning.deployment_id != first.provisioning.deployment_id
    with lent_app(second) as again:
        assert again is app
        async with AsyncTestClient(again) as client:
            runtime = runtime_of(client)
            assert runtime.settings is second
            assert runtime.engine.url.render_as_string(hide_password=False) == second.database_url
            assert (await client.get("/readyz")).status_code == 200
            assert "left_behind" not in again.state
            assert again.state.metrics is not metrics


def test_other_settings_or_a_second_app_at_once_get_an_app_of_their_own(
    make_settings: Any,
) -> None:
    settings = make_settings()
    with lent_app(settings) as app, lent_app(settings) as second:
        assert second is not app
    with lent_app(make_settings(ORGPLANE_MAX_BODY_BYTES="4096")) as limited:
        assert limited not in (app, second)
    with lent_app(make_settings(ORGPLANE_SECRET_KEY="another-secret-another-secret")) as other:
        assert other not in (app, second, limited)


def test_an_app_whose_test_raised_is_not_lent_again(make_settings: Any) -> None:
    settings = make_settings(ORGPLANE_MAX_BODY_BYTES="2048")
    with pytest.raises(RuntimeError), lent_app(settings) as broken:
        raise RuntimeError("the test failed inside its lifespan")
    with lent_app(settings) as app:
        assert app is not broken
