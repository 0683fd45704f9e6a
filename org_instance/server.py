"""Run an org instance: read the environment, configure logging, serve with uvicorn.

``python -m org_instance`` and ``orgplane instance`` both land in :func:`main`. One worker: an
instance serves one org, and its usage counters and rate-limit lock live in this process.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

from org_instance.config import ConfigError, InstanceConfig

EXIT_CONFIG = 2
#: Installed (the control plane and dev tools need them) but never used by an instance, and
#: imported at start-up only because something probes for them: Litestar loads its pydantic and
#: attrs plugins whenever those are importable; structlog and httpx's command line load rich and
#: pygments for pretty output; httpcore probes for trio, uvicorn for watchfiles (reloading).
#: Each probe treats an ImportError as "not installed". Hiding them cuts about a third of the
#: start-up CPU time (benchmarks/bench_instance.py).
UNUSED_OPTIONAL_MODULES = ("pydantic", "attr", "attrs", "rich", "pygments", "trio", "watchfiles")


def skip_unused_optional_modules() -> None:
    """Make the probes for :data:`UNUSED_OPTIONAL_MODULES` fail fast in this process."""
    for name in UNUSED_OPTIONAL_MODULES:
        if name not in sys.modules:
            sys.modules[name] = None  # type: ignore[assignment]  # import raises ImportError


def main(env: Mapping[str, str] | None = None) -> int:
    """Serve until stopped; returns the process exit code (2 for a configuration error)."""
    try:
        config = InstanceConfig.from_env(env)
    except ConfigError as exc:
        print(f"org instance: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    skip_unused_optional_modules()
    from org_instance.logs import configure_logging

    configure_logging(fmt=config.log_format, org_id=config.org_id)
    import uvicorn

    from org_instance.app import create_app

    uvicorn.run(
        create_app(config),
        host=config.bind_host,
        port=config.port,
        workers=1,
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,
        lifespan="on",
        # The sans-I/O implementation: the current one in websockets, and half the import time.
        ws="websockets-sansio",
        timeout_graceful_shutdown=5,
    )
    return 0
