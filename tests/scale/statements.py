"""Recording the SQL statements an app's engine runs, to count reads and writes in tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from litestar.testing import AsyncTestClient
from sqlalchemy import event

from tests.support.api import runtime_of


def statements_of(client: AsyncTestClient[Any]) -> AbstractContextManager[list[str]]:
    """Every statement the app's engine executes inside the block, upper-cased and stripped."""
    return statements_on(runtime_of(client).engine)


@contextmanager
def statements_on(async_engine: Any) -> Iterator[list[str]]:
    """Every statement ``async_engine`` executes inside the block, upper-cased and stripped."""
    engine = async_engine.sync_engine
    seen: list[str] = []

    def on_execute(*args: Any) -> None:
        seen.append(str(args[2]).strip().upper())

    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)


def of_kind(seen: list[str], kind: str, table: str = "") -> list[str]:
    """The statements that start with ``kind`` (``SELECT``, ``UPDATE``...) and name ``table``."""
    return [s for s in seen if s.startswith(kind) and table.upper() in s]
