"""Run an org instance: read the environment, configure logging, serve with uvicorn.

``python -m org_instance`` and ``orgplane instance`` both land in :func:`main`. One worker: an
instance serves one org, and its usage counters and rate-limit lock live in this process.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Mapping
from typing import Any

from org_instance.config import ConfigError, InstanceConfig
from org_instance.pool import PoolConfig, environment_for_start

EXIT_CONFIG = 2
#: Seconds an idle keep-alive connection stays open (see `_serve`).
KEEP_ALIVE_SECONDS = 120
#: Installed (the control plane and dev tools need them) but never used by an instance, and
#: imported at start-up only because something probes for them: Litestar loads its pydantic and
#: attrs plugins whenever those are importable; structlog and httpx's command line load rich and
#: pygments for pretty output; httpcore probes for trio, uvicorn for watchfiles (reloading).
#: structlog probes for greenlet (its deprecated ``threadlocal`` module); Litestar reads
#: annotated-types constraints (``Annotated[int, Gt(0)]``) off handler parameters, and the
#: instance's constraints are all ``msgspec.Meta``. Each probe treats an ImportError as "not
#: installed". Hiding them cuts about a third of the start-up CPU time
#: (benchmarks/bench_instance.py).
UNUSED_OPTIONAL_MODULES = (
    "pydantic",
    "attr",
    "attrs",
    "rich",
    "pygments",
    "trio",
    "watchfiles",
    "greenlet",
    "annotated_types",
)


def skip_unused_optional_modules() -> None:
    """Make the probes for :data:`UNUSED_OPTIONAL_MODULES` fail fast in this process."""
    for name in UNUSED_OPTIONAL_MODULES:
        if name not in sys.modules:
            sys.modules[name] = None  # type: ignore[assignment]  # import raises ImportError


def main(env: Mapping[str, str] | None = None) -> int:
    """Serve until stopped; returns the process exit code (2 for a configuration error).

    With a pool secret and no org configuration the instance serves as a warm-pool spare
    (:mod:`org_instance.pool`) until the control plane assigns it to its org."""
    env = os.environ if env is None else env
    try:
        start_env = environment_for_start(env)
        spare = PoolConfig.from_env(env) if start_env is None else None
        config = InstanceConfig.from_env(start_env) if start_env is not None else None
    except ConfigError as exc:
        print(f"org instance: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    # Start-up creates ~100k objects that live as long as the process (modules, classes, the
    # app's routes) and almost no garbage cycles (a few dozen objects), yet the cyclic
    # collector ran ~135 times over them meanwhile: over a tenth of the instructions to ready.
    # So it waits, and what start-up made is then frozen out of its way (gc.freeze, leaving
    # those few cycles be): later collections scan only what requests create.
    collecting = gc.isenabled()
    gc.disable()
    try:
        app, host, port = _build(env, config, spare)
        if spare is not None:
            gc.collect()  # a spare threw its warm-up app away; nobody waits for a spare
        gc.freeze()
    finally:
        if collecting:
            gc.enable()
    _serve(app, host=host, port=port)
    return 0


def _build(
    env: Mapping[str, str], config: InstanceConfig | None, spare: PoolConfig | None
) -> tuple[Any, str, int]:
    """The ASGI app to serve (the org's, or a spare's) and where it listens."""
    skip_unused_optional_modules()
    from orgplane_wire.logs import configure_logging

    if config is not None:
        configure_logging(
            fmt=config.log_format, bound={"org_id": config.org_id}, cache_loggers=True
        )
        from org_instance.app import create_app

        app: Any = create_app(config)
        host, port = config.bind_host, config.port
    else:
        assert spare is not None
        configure_logging(fmt=spare.log_format, bound={"org_id": spare.org_id}, cache_loggers=True)
        # Imported now, while nobody waits: the cost a claim must not pay.
        from org_instance.app import create_app
        from org_instance.pool_app import PoolApp, warm_up

        warm_up(create_app, spare)
        app = PoolApp(config=spare, env=dict(env), build=create_app)
        host, port = spare.bind_host, spare.port
    import uvicorn  # noqa: F401  # part of start-up: imported before the collector runs again

    return app, host, port


def _serve(app: Any, *, host: str, port: int) -> None:
    from org_instance.quiet_server import serve
    from orgplane_wire.http_protocol import HTTP_PROTOCOL
    from orgplane_wire.ws_handshake import WS_PROTOCOL

    # uvicorn.run's options, on a server without uvicorn's 0.1 s tick (quiet_server).
    serve(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,
        lifespan="on",
        # asyncio's own loop, not uvloop (which uvicorn picks when it is installed, as it is
        # for the control plane): uvloop adds ~2 MB to an idle instance's RSS (its library
        # and libuv's four worker threads) for ~14% more requests per CPU-second, and an org
        # instance is idle far more often than busy (docs/performance.md).
        loop="asyncio",
        # The sans-I/O implementation (the current one in websockets, and half the import time),
        # answering the handshakes its parser refuses instead of leaving them hanging.
        ws=WS_PROTOCOL,
        # httptools, answering the requests its parser refuses as problem+json.
        http=HTTP_PROTOCOL,
        timeout_graceful_shutdown=5,
        # Longer than the idle timeout of the proxy in front (Traefik keeps idle connections to
        # a backend for 90 s): uvicorn's default of 5 s closed connections that Traefik, or any
        # client keeping them as long as httpx's 5 s, was about to reuse, failing that request.
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )
