"""Embedded mode keeps its files to its own user: directories 0700, files 0600."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from provisioners import processes
from provisioners.local import private_dirs


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("db_backend", ["sqlite"])
async def test_the_data_directory_and_database_are_private(
    client: AsyncTestClient[Any], db_backend: str
) -> None:
    """Failed on the old code: the data directory was 0755 and the SQLite database 0644 (the
    umask's), readable by every user of the machine."""
    runtime = client.app.state.runtime
    data_dir = runtime.settings.server.data_dir
    assert _mode(data_dir) == 0o700
    database = Path(str(runtime.engine.url.database))
    assert database.exists()
    assert _mode(database) == 0o600
    for extra in (database.with_name(database.name + "-wal"),):
        if extra.exists():
            assert _mode(extra) == 0o600


def test_org_directories_and_instance_logs_are_private(tmp_path: Path) -> None:
    """Failed on the old code: the org directory made as a parent of its data directory, and
    the instance's log file, took the umask's modes (0755, 0644)."""
    old = os.umask(0o022)
    try:
        root, org = tmp_path / "orgs", tmp_path / "orgs" / "o1"
        private_dirs(root, org, org / "data")
        assert [_mode(p) for p in (root, org, org / "data")] == [0o700] * 3
        log = org / "instance.log"
        child = processes.launch(
            [sys.executable, "-c", "print('hi')"], env={}, cwd=org, log_path=log
        )
        assert child.wait(timeout=30) == 0
        assert _mode(log) == 0o600
    finally:
        os.umask(old)
