"""Restoring an archive into the data directory, all or nothing.

1. :func:`stage` reads and verifies the whole archive into ``.restore-staged/`` (every entry's
   size and sha256, the manifest's checksum, the format, a schema not newer than this
   instance's, and the database's own schema version equal to the manifest's). Nothing of the
   live data is touched until this succeeds.
2. :func:`swap` (the database closed) writes ``restore.journal`` naming the entries that exist
   now, moves them to ``.restore-aside/``, moves the staged entries in, and runs ``check`` (the
   instance's own open: migrations, integrity check). Removing the journal is the commit point;
   the aside copy is dropped after it.
3. :func:`recover` runs at every boot before the database opens, and after a failed check: a
   journal means a restore did not commit, so the aside copy is put back. Every step of the
   rollback can be repeated, so a crash during recovery is finished by the next boot.

``ORGPLANE_FAULT_RESTORE_EXIT_AT=<step>`` (see :mod:`org_instance.backup.faults`) kills the
process between steps, for the tests that prove the rollback.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Final

import structlog

from org_instance.backup.faults import fault_point
from org_instance.db import MIGRATIONS
from orgplane_wire.backup.durable import fsync_dir
from orgplane_wire.backup.manifest import ArchiveError, Entry, Manifest, read_archive

log = structlog.get_logger("orgplane.instance.restore")

JOURNAL: Final = "restore.journal"
STAGED: Final = ".restore-staged"
ASIDE: Final = ".restore-aside"
#: Everything of the data directory a restore replaces.
LIVE_ENTRIES: Final = ("instance.db", "instance.db-wal", "instance.db-shm", "files")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def stage(*, archive: Path, data_dir: Path, max_bytes: int, quota: int | None = None) -> Manifest:
    """Verify ``archive`` and unpack it into the staging directory; raises ArchiveError.

    ``quota``: the org's ``max_storage_bytes``; the files' bytes, counted as they are written,
    may not exceed it (``storage_quota_exceeded``, stopped at that point)."""
    staged = data_dir / STAGED
    _remove(staged)
    (staged / "files").mkdir(parents=True)

    def open_entry(entry: Entry) -> BinaryIO:
        # Paths passed the manifest's allowlist: data/instance.db or data/files/<id>.
        return (staged / entry.path.removeprefix("data/")).open("xb")

    try:
        with archive.open("rb") as raw:
            manifest = read_archive(
                raw, max_bytes=max_bytes, open_entry=open_entry, storage_quota=quota
            )
        if manifest.schema_version > len(MIGRATIONS):
            raise ArchiveError(
                f"the backup's schema {manifest.schema_version} is newer than this instance's "
                f"{len(MIGRATIONS)}",
                code="backup_schema_too_new",
            )
        found = _schema_version(staged / "instance.db")
        if found != manifest.schema_version:
            raise ArchiveError(
                f"the backup's database has schema {found}, its manifest says "
                f"{manifest.schema_version}",
                code="backup_schema_mismatch",
            )
    except BaseException:
        _remove(staged)
        raise
    fault_point("after_staging")
    return manifest


def _schema_version(path: Path) -> int:
    """``PRAGMA user_version`` of the staged database, read-only; ArchiveError if it is not
    one."""
    try:
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
        try:
            return int(conn.execute("PRAGMA user_version").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise ArchiveError(f"the backup's database does not open: {exc}") from None


def check_database(path: Path) -> None:
    """The restored database opens, passes SQLite's integrity check and migrates."""
    from org_instance.db import migrate

    conn = sqlite3.connect(path, isolation_level=None)
    try:
        result = conn.execute("PRAGMA integrity_check").fetchone()[0]
        if result != "ok":
            raise ArchiveError(f"the restored database is damaged: {str(result)[:200]}")
        conn.execute("PRAGMA journal_mode = WAL")
        migrate(conn)
    except sqlite3.DatabaseError as exc:
        raise ArchiveError(f"the restored database does not open: {exc}") from None
    except RuntimeError as exc:  # migrate: a schema this instance does not know
        raise ArchiveError(str(exc), code="backup_schema_mismatch") from None
    finally:
        conn.close()


def _write_journal(data_dir: Path, present: list[str]) -> None:
    path = data_dir / JOURNAL
    with path.open("w") as handle:
        json.dump({"present": present}, handle)
        handle.flush()
        os.fsync(handle.fileno())
    fsync_dir(data_dir)


def swap(*, data_dir: Path, check: Callable[[Path], None] = check_database) -> None:
    """Replace the live data with the staged data (the database must be closed).

    On a failed check the live data is put back and the error raised.
    """
    staged, aside = data_dir / STAGED, data_dir / ASIDE
    _remove(aside)
    aside.mkdir()
    present = [name for name in LIVE_ENTRIES if (data_dir / name).exists()]
    _write_journal(data_dir, present)
    try:
        fault_point("after_journal")
        for name in present:
            os.replace(data_dir / name, aside / name)
        fsync_dir(data_dir)
        fault_point("after_move_aside")
        for name in ("instance.db", "files"):
            os.replace(staged / name, data_dir / name)
        fsync_dir(data_dir)
        fault_point("after_move_in")
        check(data_dir / "instance.db")
        fault_point("after_check")
        (data_dir / JOURNAL).unlink()
        fsync_dir(data_dir)
    except BaseException:
        recover(data_dir)
        raise
    fault_point("after_commit")
    _remove(aside)
    _remove(staged)


def recover(data_dir: Path) -> bool:
    """Undo a restore that did not commit; True when there was one to undo.

    Also clears what a committed or abandoned restore left behind (aside copy, staging).
    """
    journal, aside = data_dir / JOURNAL, data_dir / ASIDE
    undone = journal.exists()
    if undone:
        present: set[str] | None
        try:
            present = set(json.loads(journal.read_text())["present"])
        except (ValueError, KeyError, TypeError):
            # A journal torn while being written: nothing was moved yet (it is fsynced first).
            present = None
        for name in LIVE_ENTRIES:
            if present is None:
                break
            kept = aside / name
            if name in present and kept.exists():
                _remove(data_dir / name)
                os.replace(kept, data_dir / name)
            elif name not in present:
                _remove(data_dir / name)  # came from the staged data
        fsync_dir(data_dir)
        journal.unlink()
        fsync_dir(data_dir)
        log.warning("rolled back a restore that did not finish", data_dir=str(data_dir))
    leftovers = [aside, data_dir / STAGED]
    if data_dir.is_dir():  # and the work files of backups and uploads cut short
        leftovers += [*data_dir.glob(".backup-*"), *data_dir.glob(".restore-upload-*")]
    for leftover in leftovers:
        if leftover.exists():
            _remove(leftover)
    return undone
