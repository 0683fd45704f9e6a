"""Running an operator's command on the configured database (``orgplane oauth-clients``):
settings from ``ORGPLANE_*`` like the server, a migrated database required
(:func:`control_plane.cli.main.migrated_runtime`), problems turned into :class:`CliError`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from control_plane.cli.main import CliError, migrated_runtime


async def on_database(work: Callable[[Any, Any], Awaitable[Any]]) -> Any:
    """``work(runtime, db)`` with a migrated runtime and one session; a configuration error, an
    unmigrated database or a problem (400, 404...) is a CliError."""
    from orgplane_wire.problems import ProblemError

    try:
        async with migrated_runtime() as runtime, runtime.sessions() as db:
            return await work(runtime, db)
    except ProblemError as exc:
        raise CliError(exc.detail) from None
