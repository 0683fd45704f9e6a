"""Running an operator's command on the configured database (``orgplane keys``,
``orgplane oauth-clients``): settings from ``ORGPLANE_*`` like the server, a migrated
database required, failures the user can act on turned into :class:`CliError`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from control_plane.cli.main import CliError
from control_plane.settings import get_settings


async def on_database(work: Callable[[Any, Any], Awaitable[Any]]) -> Any:
    """``work(runtime, db)`` with a runtime built from the settings and one session; a
    configuration error, an unmigrated database or a problem (400, 404...) is a CliError."""
    from control_plane.db.migrate import DatabaseNotMigrated, ensure_migrated
    from control_plane.errors import ProblemError
    from control_plane.runtime import ConfigurationError, Runtime

    try:
        runtime = Runtime.build(get_settings())
    except ConfigurationError as exc:
        raise CliError(str(exc)) from None
    try:
        await ensure_migrated(runtime.engine)
        async with runtime.sessions() as db:
            return await work(runtime, db)
    except DatabaseNotMigrated as exc:
        raise CliError(str(exc)) from None
    except ProblemError as exc:
        raise CliError(exc.detail) from None
    finally:
        await runtime.close()
