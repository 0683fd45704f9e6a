"""A restore is bounded by the org's storage quota on the bytes it really writes, and storage
use is measured on the files, never on a row or manifest field an archive sets.

An in-process instance; the archive's database claims every file is one byte long."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from org_instance.backup.restore import STAGED
from orgplane_wire.backup.protocol import CONTROL_PLANE_SUBJECT, RESTORE_PATH, SCOPE_RESTORE
from tests.backups.test_archive import archive_of, make_data, read_data
from tests.instance.conftest import runtime_of
from tests.instance.helpers import Signer, bearer
from tests.support.api import assert_problem

FILES = {"f1": b"one" * 1000, "f2": b"two"}
REAL_BYTES = 3003


def lying_archive(tmp_path: Path) -> bytes:
    """An archive of FILES whose ``files`` rows say each file is 1 byte."""
    source = tmp_path / "source"
    make_data(source, title="restored", files=FILES)
    conn = sqlite3.connect(source / "instance.db", isolation_level=None)
    conn.execute("UPDATE files SET size = 1")
    conn.close()
    archive_of(source, tmp_path / "lying.tar.gz")
    return (tmp_path / "lying.tar.gz").read_bytes()


def restore_token(signer: Signer, org_id: str) -> dict[str, str]:
    return bearer(signer.token(org_id, sub=CONTROL_PLANE_SUBJECT, scope=SCOPE_RESTORE))


async def test_a_restore_over_the_storage_quota_is_refused_and_changes_nothing(
    make_instance: Any, signer: Signer, tmp_path: Path
) -> None:
    """Failed on the old code: the instance restored 3,003 bytes of files into an org allowed
    2,000 (200), and then reported 2 bytes used, the archive's own rows' sum."""
    body = lying_archive(tmp_path)
    data_dir = tmp_path / "instance"
    make_data(data_dir, title="kept", files={"f9": b"nine"})
    async with make_instance(data_dir=data_dir, limits={"max_storage_bytes": 2000}) as instance:
        org_id = runtime_of(instance).config.org_id
        answer = await instance.post(
            RESTORE_PATH, headers=restore_token(signer, org_id), content=body
        )
        problem = assert_problem(answer, 413, "storage_quota_exceeded")
        assert "2000" in problem["detail"]
        assert read_data(data_dir) == ("kept", {"f9": b"nine"})
        assert not (data_dir / STAGED).exists()
        assert runtime_of(instance).usage.storage_bytes == 4


async def test_storage_use_after_a_restore_is_the_files_real_size(
    make_instance: Any, signer: Signer, tmp_path: Path
) -> None:
    """Failed on the old code: after restoring an archive whose rows say 1 byte per file, the
    instance counted 2 bytes used (its quota check then let the org upload past its plan)."""
    body = lying_archive(tmp_path)
    async with make_instance(limits={"max_storage_bytes": 5000}) as instance:
        runtime = runtime_of(instance)
        org_id = runtime.config.org_id
        answer = await instance.post(
            RESTORE_PATH, headers=restore_token(signer, org_id), content=body
        )
        assert answer.status_code == 200, answer.text
        assert runtime.usage.storage_bytes == REAL_BYTES
        who = bearer(signer.token(org_id))
        usage = (await instance.get("/api/v1/usage", headers=who)).json()
        assert usage["usage"]["storage_bytes"] == REAL_BYTES
        # The quota counts the real bytes: 2,000 more do not fit in 5,000.
        refused = await instance.post(
            "/api/v1/files", headers=who, params={"name": "more"}, content=b"m" * 2000
        )
        assert_problem(refused, 403, "quota_exceeded")
