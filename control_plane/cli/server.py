"""``orgplane up``, ``orgplane serve``, ``orgplane migrate``, ``orgplane config docs``."""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

#: prometheus-client's variable (``control_plane.metrics.MULTIPROC_ENV``; not imported here, so
#: the CLI does not load prometheus-client before the variable is set).
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def register(sub: Any) -> None:
    """Add the server commands."""
    up = sub.add_parser("up", help="run the embedded platform (SQLite, local provisioner)")
    up.set_defaults(func=cmd_up)
    serve = sub.add_parser("serve", help="run the control plane with the configured settings")
    serve.add_argument("--workers", type=int, default=1)
    serve.set_defaults(func=cmd_serve)
    migrate = sub.add_parser("migrate", help="apply database migrations")
    migrate.set_defaults(func=cmd_migrate)
    config = sub.add_parser("config", help="settings")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    docs = config_sub.add_parser("docs", help="print docs/configuration.md")
    docs.set_defaults(func=cmd_config_docs)


def cmd_config_docs(_: argparse.Namespace) -> None:
    """Print docs/configuration.md."""
    from control_plane.settings import render_docs

    print(render_docs())


@contextmanager
def _shared_metrics(workers: int) -> Iterator[None]:
    """Several workers: prometheus-client keeps every value in files of one directory, so a
    scrape answered by any worker counts them all. The directory is set before the workers
    import prometheus-client (it reads the variable at import), fresh for each start (stale
    files would add a past run's counts), and removed at exit. An operator's own
    ``PROMETHEUS_MULTIPROC_DIR`` is kept and left alone."""
    if workers <= 1 or os.environ.get(MULTIPROC_ENV):
        yield
        return
    directory = tempfile.mkdtemp(prefix="orgplane-metrics-")
    os.environ[MULTIPROC_ENV] = directory
    try:
        yield
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(directory, ignore_errors=True)


def _run_server(workers: int = 1) -> None:
    import uvicorn

    from control_plane.settings import get_settings
    from orgplane_wire.http_protocol import HTTP_PROTOCOL
    from orgplane_wire.ws_handshake import WS_PROTOCOL

    settings = get_settings()
    with _shared_metrics(workers):
        uvicorn.run(
            "control_plane.app:create_app",
            factory=True,
            host=settings.server.host,
            port=settings.server.port,
            workers=workers,
            log_config=None,
            access_log=False,
            proxy_headers=False,
            timeout_keep_alive=settings.server.keep_alive_timeout,
            # Answers the WebSocket handshakes uvicorn's own protocol leaves hanging, and the
            # requests its HTTP parser refuses, as problem+json.
            ws=WS_PROTOCOL,
            http=HTTP_PROTOCOL,
        )


def cmd_serve(args: argparse.Namespace) -> None:
    """Serve the control plane."""
    _run_server(args.workers)


def cmd_migrate(_: argparse.Namespace) -> None:
    """Bring the database to the newest migration."""
    from control_plane.db.engine import make_engine
    from control_plane.db.migrate import current_revision, upgrade
    from control_plane.settings import get_settings

    settings = get_settings()

    async def run() -> str | None:
        engine = make_engine(settings.database_url)
        try:
            if settings.database_url.startswith("sqlite"):
                settings.server.data_dir.mkdir(parents=True, exist_ok=True)
            await upgrade(engine)
            return await current_revision(engine)
        finally:
            await engine.dispose()

    print(f"database at migration {asyncio.run(run())}")


def cmd_up(_: argparse.Namespace) -> None:
    """Embedded mode: migrate, make sure an admin exists, print how to log in, serve."""
    from control_plane.cli.admin import ensure_embedded_admin
    from control_plane.settings import get_settings

    if os.environ.get("ORGPLANE_MODE", "embedded") != "embedded":
        raise SystemExit("orgplane up runs the embedded mode; use `orgplane serve` in production")
    # No Traefik here: the control plane's own port answers the orgs' hosts.
    os.environ.setdefault("ORGPLANE_EMBEDDED_ROUTING", "true")
    get_settings.cache_clear()
    settings = get_settings()
    if settings.server.mode != "embedded":
        raise SystemExit("orgplane up runs the embedded mode; use `orgplane serve` in production")
    cmd_migrate(argparse.Namespace())
    email, password, created = ensure_embedded_admin(one_time_password=secrets.token_urlsafe(12))
    url = settings.server.base_url
    print(f"\norgplane is starting at {url}")
    if password:
        print(f"Log in as {email} with the one-time password: {password}")
        print("(change it after logging in: POST /api/v1/me/password)")
    elif created:
        print(f"Log in as {email} with the password in ORGPLANE_ADMIN_PASSWORD.")
    else:
        print(f"Log in as {email} (the admin exists already).")
    if settings.routing.embedded_routing:
        origin = f"http://{{slug}}.{settings.provisioning.base_domain}:{settings.server.port}"
        print(f"Orgs are reached at {origin}/ (this same port)")
    print(f"API docs: {url}/api/schema\n", flush=True)
    _run_server()
