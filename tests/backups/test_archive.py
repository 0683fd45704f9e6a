"""The archive format and the journaled swap, on real files (no services needed)."""

from __future__ import annotations

import gzip
import io
import json
import os
import sqlite3
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from org_instance.backup.archive import snapshot, write_archive
from org_instance.backup.faults import FAULT_ENV, STEPS
from org_instance.backup.restore import ASIDE, JOURNAL, STAGED, recover, stage, swap
from org_instance.db import MIGRATIONS, migrate
from orgplane_wire.backup.manifest import (
    CHUNK,
    MAX_RATIO,
    RATIO_FLOOR,
    TOO_LARGE,
    ArchiveError,
    Entry,
    build_manifest,
    peek_manifest,
    read_archive,
)
from orgplane_wire.faults import FAULT_EXIT_CODE

ORG = "a" * 32


def make_data(data_dir: Path, *, title: str, files: dict[str, bytes]) -> None:
    """An instance data directory: a migrated database with one session, and files."""
    (data_dir / "files").mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(data_dir / "instance.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    migrate(conn)
    conn.execute("DELETE FROM sessions")
    conn.execute("DELETE FROM files")
    conn.execute("INSERT INTO sessions VALUES ('s1', ?, 'u', 't', 't')", (title,))
    for file_id, body in files.items():
        (data_dir / "files" / file_id).write_bytes(body)
        conn.execute(
            "INSERT INTO files VALUES (?, ?, ?, 'x', 'u', 't')", (file_id, file_id, len(body))
        )
    conn.close()


def read_data(data_dir: Path) -> tuple[str, dict[str, bytes]]:
    conn = sqlite3.connect(data_dir / "instance.db")
    try:
        title = conn.execute("SELECT title FROM sessions").fetchone()[0]
    finally:
        conn.close()
    files = {p.name: p.read_bytes() for p in sorted((data_dir / "files").iterdir())}
    return title, files


def archive_of(data_dir: Path, out: Path) -> None:
    version = snapshot(
        db_path=data_dir / "instance.db", files_dir=data_dir / "files", into=out.parent / "snap"
    )
    write_archive(
        staged=out.parent / "snap", out=out, org_id=ORG, org_slug="acme", schema_version=version
    )


def hostile(out: Path, members: list[tuple[tarfile.TarInfo, bytes]], manifest: bytes) -> Path:
    """A tar.gz with ``manifest`` first and then ``members`` as given."""
    with tarfile.open(out, "w:gz") as tar:
        info = tarfile.TarInfo("manifest.json")
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
        for info, body in members:
            tar.addfile(info, io.BytesIO(body) if info.isreg() else None)
    return out


def manifest_for(entries: list[Entry], **overrides: object) -> bytes:
    body = json.loads(
        build_manifest(
            org_id=ORG, org_slug="acme", schema_version=1, created_at="now", entries=entries
        ).to_json()
    )
    body.update(overrides)
    return json.dumps(body).encode()


@pytest.fixture
def source(tmp_path: Path) -> Path:
    data = tmp_path / "source"
    make_data(data, title="original", files={"f1": b"one" * 1000, "f2": b"two"})
    return data


def test_round_trip_restores_rows_and_files(source: Path, tmp_path: Path) -> None:
    archive = tmp_path / "a.tar.gz"
    archive_of(source, archive)
    with archive.open("rb") as raw:
        manifest = read_archive(raw, max_bytes=10**8)
    assert [e.path for e in manifest.entries] == [
        "data/files/f1",
        "data/files/f2",
        "data/instance.db",
    ]
    assert manifest.org_id == ORG
    assert manifest.schema_version == len(MIGRATIONS)
    with archive.open("rb") as raw:
        assert peek_manifest(raw).checksum == manifest.checksum

    target = tmp_path / "target"
    make_data(target, title="other", files={"f9": b"nine"})
    stage(archive=archive, data_dir=target, max_bytes=10**8)
    swap(data_dir=target)
    assert read_data(target) == ("original", {"f1": b"one" * 1000, "f2": b"two"})
    assert not (target / JOURNAL).exists()
    assert not (target / ASIDE).exists()
    assert not (target / STAGED).exists()


def test_tampered_entry_is_refused_and_nothing_changes(source: Path, tmp_path: Path) -> None:
    archive = tmp_path / "a.tar.gz"
    archive_of(source, archive)
    with tarfile.open(archive) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]  # type: ignore[union-attr]
    manifest = members[0][1]
    members = [(m, b"ONE" * 1000 if m.name == "data/files/f1" else body) for m, body in members[1:]]
    bad = hostile(tmp_path / "bad.tar.gz", members, manifest)
    target = tmp_path / "target"
    make_data(target, title="kept", files={"f9": b"nine"})
    with pytest.raises(ArchiveError) as caught:
        stage(archive=bad, data_dir=target, max_bytes=10**8)
    assert caught.value.code == "checksum_mismatch"
    assert read_data(target) == ("kept", {"f9": b"nine"})
    assert not (target / STAGED).exists()


@pytest.mark.parametrize(
    "name", ["../evil", "/etc/passwd", "data/files/../../x", "data/other", "data/files/a/b"]
)
def test_paths_outside_the_allowlist_are_refused(tmp_path: Path, name: str) -> None:
    entry = Entry(name, 1, "0" * 64)
    body = manifest_for([Entry("data/instance.db", 1, "0" * 64)])
    tampered = json.loads(body)
    tampered["entries"].append({"path": entry.path, "size": 1, "sha256": "0" * 64})
    bad = hostile(tmp_path / "bad.tar.gz", [], json.dumps(tampered).encode())
    with pytest.raises(ArchiveError, match="not allowed"), bad.open("rb") as raw:
        read_archive(raw, max_bytes=10**6)
    # A member with that name (not in the manifest) is refused as well.
    info = tarfile.TarInfo(name)
    info.size = 1
    bad = hostile(tmp_path / "bad2.tar.gz", [(info, b"x")], body)
    with pytest.raises(ArchiveError), bad.open("rb") as raw:
        read_archive(raw, max_bytes=10**6)


def test_links_and_unknown_formats_are_refused(tmp_path: Path) -> None:
    link = tarfile.TarInfo("data/instance.db")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    body = manifest_for([Entry("data/instance.db", 0, "0" * 64)])
    bad = hostile(tmp_path / "link.tar.gz", [(link, b"")], body)
    with pytest.raises(ArchiveError, match="not a regular file"), bad.open("rb") as raw:
        read_archive(raw, max_bytes=10**6)
    other = hostile(tmp_path / "fmt.tar.gz", [], manifest_for([], format="tarball/9"))
    with pytest.raises(ArchiveError) as caught, other.open("rb") as raw:
        read_archive(raw, max_bytes=10**6)
    assert caught.value.code == "unsupported_backup_format"
    with pytest.raises(ArchiveError):
        read_archive(io.BytesIO(b"not gzip at all"), max_bytes=10**6)


def test_a_size_bomb_stops_at_the_bound(tmp_path: Path) -> None:
    path = zeros_bomb(tmp_path / "bomb.tar.gz", 64 * 1024 * 1024)  # compresses to ~64 KiB
    assert path.stat().st_size < 1024 * 1024
    with pytest.raises(ArchiveError) as caught, path.open("rb") as raw:
        read_archive(raw, max_bytes=4 * 1024 * 1024)
    assert caught.value.code == "archive_too_large"


def zeros_bomb(path: Path, size: int) -> Path:
    """A valid-looking archive whose database entry is ``size`` zero bytes (compresses ~1000:1)."""
    info = tarfile.TarInfo("data/instance.db")
    info.size = size
    body = manifest_for([Entry("data/instance.db", size, "0" * 64)])
    with gzip.open(path, "wb", compresslevel=9) as raw, tarfile.open(fileobj=raw, mode="w|") as tar:
        head = tarfile.TarInfo("manifest.json")
        head.size = len(body)
        tar.addfile(head, io.BytesIO(body))
        tar.addfile(info, io.BytesIO(bytes(size)))
    return path


def test_a_compression_bomb_stops_at_the_ratio_under_any_byte_limit(tmp_path: Path) -> None:
    """Failed on the old code: with a byte limit above the bomb (a 16 GiB restore limit is the
    default) all 64 MiB were inflated and hashed before it was refused, as ``checksum_mismatch``.
    Now reading stops once the stream expands past MAX_RATIO times what was read, at
    RATIO_FLOOR bytes and a little."""
    bomb = zeros_bomb(tmp_path / "bomb.tar.gz", 64 * 1024 * 1024)
    assert bomb.stat().st_size * MAX_RATIO < 64 * 1024 * 1024
    written: list[int] = []

    class Sink(io.BytesIO):
        def write(self, data: Any) -> int:
            written.append(len(data))
            return len(data)

    with pytest.raises(ArchiveError) as caught, bomb.open("rb") as raw:
        read_archive(raw, max_bytes=10**12, open_entry=lambda entry: Sink())
    assert caught.value.code == "compression_ratio_exceeded"
    assert sum(written) <= RATIO_FLOOR + 2 * CHUNK


def test_the_storage_quota_counts_the_bytes_written_and_stops_before_going_over(
    tmp_path: Path,
) -> None:
    """The files' real bytes count against the quota as they are written (the database entry
    does not count: storage is the files); the first byte over it stops the read, so at most
    the quota was written; the same archive passes with room to spare."""
    source = tmp_path / "source"
    make_data(source, title="t", files={"big": b"b" * (3 * CHUNK), "small": b"s"})
    archive = tmp_path / "a.tar.gz"
    archive_of(source, archive)
    written: dict[str, int] = {}

    def open_entry(entry: Entry) -> Any:
        class Sink(io.BytesIO):
            def write(self, data: Any) -> int:
                written[entry.path] = written.get(entry.path, 0) + len(data)
                return len(data)

        return Sink()

    with pytest.raises(ArchiveError) as caught, archive.open("rb") as raw:
        read_archive(raw, max_bytes=10**9, open_entry=open_entry, storage_quota=2 * CHUNK)
    assert caught.value.code == "storage_quota_exceeded"
    assert caught.value.code in TOO_LARGE
    assert written.get("data/files/big", 0) <= 2 * CHUNK
    with archive.open("rb") as raw:
        read_archive(raw, max_bytes=10**9, storage_quota=3 * CHUNK + 1)


def test_a_newer_schema_is_refused(source: Path, tmp_path: Path) -> None:
    conn = sqlite3.connect(source / "instance.db")
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.close()
    archive = tmp_path / "a.tar.gz"
    archive_of(source, archive)
    target = tmp_path / "target"
    make_data(target, title="kept", files={})
    with pytest.raises(ArchiveError) as caught:
        stage(archive=archive, data_dir=target, max_bytes=10**8)
    assert caught.value.code == "backup_schema_too_new"
    assert read_data(target) == ("kept", {})


def test_a_database_whose_schema_differs_from_its_manifest_is_refused(
    source: Path, tmp_path: Path
) -> None:
    """Failed on the old code: the manifest claimed schema 1, so staging passed, and the swap's
    migration raised RuntimeError (an instance 500) on the database's schema 99."""
    conn = sqlite3.connect(source / "instance.db")
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    snapshot(db_path=source / "instance.db", files_dir=source / "files", into=tmp_path / "snap")
    archive = tmp_path / "a.tar.gz"
    write_archive(staged=tmp_path / "snap", out=archive, org_id=ORG, org_slug="acme",
                  schema_version=1)  # fmt: skip
    target = tmp_path / "target"
    make_data(target, title="kept", files={"f9": b"nine"})
    with pytest.raises(ArchiveError) as caught:
        stage(archive=archive, data_dir=target, max_bytes=10**8)
    assert caught.value.code == "backup_schema_mismatch"
    assert read_data(target) == ("kept", {"f9": b"nine"})
    assert not (target / STAGED).exists()


def test_a_failed_check_puts_the_data_back(source: Path, tmp_path: Path) -> None:
    archive = tmp_path / "a.tar.gz"
    archive_of(source, archive)
    target = tmp_path / "target"
    make_data(target, title="kept", files={"f9": b"nine"})
    stage(archive=archive, data_dir=target, max_bytes=10**8)

    def failing_check(path: Path) -> None:
        raise ArchiveError("simulated damage")

    with pytest.raises(ArchiveError):
        swap(data_dir=target, check=failing_check)
    assert read_data(target) == ("kept", {"f9": b"nine"})
    assert not (target / JOURNAL).exists()


SWAP_IN_CHILD = """
import sys
from pathlib import Path
from org_instance.backup.restore import swap
swap(data_dir=Path(sys.argv[1]))
"""


@pytest.mark.parametrize("step", [s for s in STEPS if s != "after_staging"])
def test_a_crash_at_any_step_is_undone_or_finished_at_boot(
    source: Path, tmp_path: Path, step: str
) -> None:
    archive = tmp_path / "a.tar.gz"
    archive_of(source, archive)
    target = tmp_path / "target"
    make_data(target, title="kept", files={"f9": b"nine"})
    stage(archive=archive, data_dir=target, max_bytes=10**8)
    env = {**os.environ, FAULT_ENV: step}
    child = subprocess.run(
        [sys.executable, "-c", SWAP_IN_CHILD, str(target)], env=env, timeout=60, check=False
    )
    assert child.returncode == FAULT_EXIT_CODE
    undone = recover(target)
    committed = step == "after_commit"
    assert undone is not committed
    expected = ("original", {"f1": b"one" * 1000, "f2": b"two"}) if committed else None
    assert read_data(target) == (expected or ("kept", {"f9": b"nine"}))
    assert not (target / JOURNAL).exists()
    assert not (target / ASIDE).exists()
    assert recover(target) is False  # nothing left to do: recovery is idempotent
