"""Control-plane apps for the ``client`` fixture, built once per worker and lent to one test at a
time.

Building the Litestar app (route registration, signature models, the routing trie) costs
0.2-0.35 CPU-s, and about 500 tests ask for the ``client`` fixture. What the app is made of
depends on settings only through values that are the same in every one of those tests (the
secret, the UI's origins and cookies, the body limit, ...); what differs per test (the database,
the data directory, the deployment id) is read by the lifespan alone, which builds the
:class:`~control_plane.runtime.Runtime` (engine, keys, stores) at each start. So an app is
reused for settings that differ only in those fields, with a fresh lifespan and a fresh
``app.state`` per test: nothing a test did (its runtime, metrics, a reconciler) is left for the
next one. An app is lent to one test at a time (a test that needs two gets a second one), and
taken back only when the test's block ended without an exception.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

from litestar import Litestar
from litestar.datastructures import State
from pydantic import SecretStr

from control_plane import app as app_module
from control_plane.logs import configure_logging
from control_plane.process_metrics import ControlPlaneMetrics
from control_plane.settings import Settings

# Read by the lifespan only (Runtime.build), never while the app is built.
_PER_TEST = {
    "server": {"data_dir"},
    "database": {"database_url"},
    "provisioning": {"deployment_id"},
}

_idle: defaultdict[str, list[Litestar]] = defaultdict(list)


def shape(settings: Settings) -> str:
    """What ``create_app`` builds from: every setting but the per-test ones."""
    groups = {
        name: group.model_dump(exclude=_PER_TEST.get(name, set()))
        for name, group in settings.groups.items()
    }
    return json.dumps(groups, sort_keys=True, default=_plain)


def _plain(value: object) -> str:
    # Secrets by value: two apps built with different secret keys are not the same app.
    return value.get_secret_value() if isinstance(value, SecretStr) else repr(value)


def _lifespan_index(app: Litestar) -> int:
    """Where ``create_app`` put its lifespan among the app's lifespan managers."""
    managers = app._lifespan_managers
    found = [
        i for i, m in enumerate(managers) if getattr(m, "__qualname__", "").startswith("_lifespan.")
    ]
    assert len(found) == 1, f"create_app's lifespan not found among {managers!r}"
    return found[0]


@contextmanager
def lent_app(settings: Settings) -> Iterator[Litestar]:
    """A control-plane app for ``settings``, as ``create_app(settings)`` would build it, for
    the duration of the block (its lifespan is entered by the test client)."""
    key = shape(settings)
    if _idle[key]:
        app = _idle[key].pop()
        configure_logging(fmt=settings.server.log_format, level=settings.server.log_level)
    else:
        app = app_module.create_app(settings)
    app._lifespan_managers[_lifespan_index(app)] = app_module._lifespan(settings)
    app.state = State()
    app.state.metrics = ControlPlaneMetrics()
    yield app  # an app whose test raised (its lifespan may not have ended) is not lent again
    _idle[key].append(app)
