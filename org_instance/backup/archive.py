"""Building a backup archive of a running instance.

:func:`snapshot` runs on the database's writer thread (``Database.run_raw``), so no write can
land while it works: it copies the database with SQLite's online backup API (a consistent copy
while readers keep reading) and hard-links the files whose rows the copy holds. Files are
written before their row is inserted and unlinked after their row is deleted, so every row of
the copy has its file. :func:`write_archive` then hashes the snapshot, writes the manifest and
the tar, off the event loop and without holding up writers.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from orgplane_wire.backup.manifest import (
    CHUNK,
    DB_ENTRY,
    FILES_PREFIX,
    MANIFEST_NAME,
    Entry,
    Manifest,
    build_manifest,
)

if TYPE_CHECKING:  # imported when a backup is written: an instance starts without it
    import tarfile

log = structlog.get_logger("orgplane.instance.backup")

#: gzip level: SQLite pages compress well at 3; higher levels cost CPU for little gain.
COMPRESS_LEVEL = 3


def snapshot(*, db_path: Path, files_dir: Path, into: Path) -> int:
    """Copy the database and link its files under ``into``; returns the schema version."""
    (into / "files").mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(db_path)
    target = sqlite3.connect(into / "instance.db")
    try:
        source.backup(target)
        version = int(target.execute("PRAGMA user_version").fetchone()[0])
        ids = [row[0] for row in target.execute("SELECT id FROM files")]
    finally:
        target.close()
        source.close()
    for file_id in ids:
        try:
            os.link(files_dir / file_id, into / "files" / file_id)
        except FileNotFoundError:
            log.warning("file row without its file; left out of the backup", file_id=file_id)
        except OSError:  # a filesystem without hard links: copy instead
            shutil.copy2(files_dir / file_id, into / "files" / file_id)
    return version


def _hash(path: Path) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _local_paths(staged: Path) -> dict[str, Path]:
    paths = {DB_ENTRY: staged / "instance.db"}
    for item in sorted((staged / "files").iterdir()):
        paths[FILES_PREFIX + item.name] = item
    return paths


def _member(name: str, size: int, mtime: float) -> tarfile.TarInfo:
    import tarfile

    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, int(mtime), 0o600
    return info


def write_archive(
    *, staged: Path, out: Path, org_id: str, org_slug: str, schema_version: int
) -> Manifest:
    """Write the archive of the snapshot in ``staged`` to ``out``; returns its manifest."""
    import tarfile

    now = datetime.now(UTC)
    paths = _local_paths(staged)
    entries = []
    for name, path in paths.items():
        size, sha = _hash(path)
        entries.append(Entry(name, size, sha))
    manifest = build_manifest(
        org_id=org_id,
        org_slug=org_slug,
        schema_version=schema_version,
        created_at=now.isoformat(timespec="seconds"),
        entries=entries,
    )
    raw = manifest.to_json()
    with tarfile.open(out, "w:gz", compresslevel=COMPRESS_LEVEL, format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(_member(MANIFEST_NAME, len(raw), now.timestamp()), io.BytesIO(raw))
        for entry in manifest.entries:
            with paths[entry.path].open("rb") as handle:
                tar.addfile(_member(entry.path, entry.size, now.timestamp()), handle)
    return manifest
