"""Archives at rest (control_plane/backups/crypto.py, store.py): encrypted in authenticated
chunks with the org's data key, which the platform key wraps. No services needed."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from control_plane.backups.crypto import (
    CHUNK,
    ArchiveSealer,
    ArchiveUnreadable,
    PlatformKeys,
    new_data_key,
    open_sealed,
)
from control_plane.backups.store import BackupStore

ORG, OTHER_ORG, BACKUP = "a" * 32, "b" * 32, "c" * 32


def seal(data: bytes, key: bytes, *, org_id: str = ORG, backup_id: str = BACKUP) -> bytes:
    sealer = ArchiveSealer(key, org_id=org_id, backup_id=backup_id)
    out = bytearray()
    for start in range(0, len(data), 100_000):  # fed in pieces that are not chunk-aligned
        out += sealer.feed(data[start : start + 100_000])
    return bytes(out + sealer.finish())


def unseal(blob: bytes, key: bytes, *, org_id: str = ORG, backup_id: str = BACKUP) -> bytes:
    with open_sealed(io.BytesIO(blob), key, org_id=org_id, backup_id=backup_id) as reader:
        return reader.read()


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 2 * CHUNK + 7])
def test_round_trip_at_every_chunk_boundary(size: int) -> None:
    key, data = new_data_key(), os.urandom(size)
    blob = seal(data, key)
    assert unseal(blob, key) == data
    assert size < 64 or data[:64] not in blob


def test_another_key_org_or_backup_id_does_not_decrypt() -> None:
    key, data = new_data_key(), os.urandom(3000)
    blob = seal(data, key)
    for other in (
        {"key": new_data_key()},
        {"key": key, "org_id": OTHER_ORG},
        {"key": key, "backup_id": "d" * 32},
    ):
        with pytest.raises(ArchiveUnreadable):
            unseal(blob, **other)  # type: ignore[arg-type]


DAMAGES = (
    "a flipped bit",
    "the last chunk dropped",
    "two chunks swapped",
    "a chunk appended",
    "cut mid-chunk",
    "the header changed",
    "no header",
)


def damage(blob: bytes, how: str) -> bytes:
    """``blob`` (an archive of 3 full chunks and a short one) damaged ``how``."""
    header, sealed = 44, CHUNK + 16
    chunks = [blob[header + i * sealed : header + (i + 1) * sealed] for i in range(4)]
    flipped = bytearray(blob)
    flipped[header + 5] ^= 1
    return {
        "a flipped bit": bytes(flipped),
        "the last chunk dropped": blob[:header] + b"".join(chunks[:3]),
        "two chunks swapped": blob[:header] + chunks[1] + chunks[0] + chunks[2] + chunks[3],
        "a chunk appended": blob + chunks[1],
        "cut mid-chunk": blob[: header + sealed + 100],
        "the header changed": blob[:8] + (2 * CHUNK).to_bytes(4, "big") + blob[12:],
        "no header": b"OPBK",
    }[how]


@pytest.mark.parametrize("how", DAMAGES)
def test_tampered_truncated_reordered_or_extended_archives_are_refused(how: str) -> None:
    key, data = new_data_key(), os.urandom(3 * CHUNK + 10)
    damaged = damage(seal(data, key), how)
    with pytest.raises(ArchiveUnreadable):
        unseal(damaged, key)


def test_data_keys_wrap_under_the_platform_key_and_its_predecessors() -> None:
    data_key = new_data_key()
    old = PlatformKeys("old deployment secret")
    wrapped = old.wrap(data_key, org_id=ORG)
    assert data_key.hex() not in wrapped
    with pytest.raises(ArchiveUnreadable):
        old.unwrap(wrapped, org_id=OTHER_ORG)  # bound to its org
    for damaged in (wrapped[:-8], wrapped + "!", wrapped.split(":")[0] + ":", "no id"):
        with pytest.raises(ArchiveUnreadable):
            old.unwrap(damaged, org_id=ORG)
    new = PlatformKeys("new backup key")
    with pytest.raises(ArchiveUnreadable):
        new.unwrap(wrapped, org_id=ORG)
    rotating = PlatformKeys("new backup key", ["old deployment secret"])
    assert rotating.unwrap(wrapped, org_id=ORG) == data_key
    rewrapped = rotating.wrap(data_key, org_id=ORG)
    assert rewrapped.startswith(new.current_id + ":")
    assert new.unwrap(rewrapped, org_id=ORG) == data_key


async def _pieces(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 65536):
        yield data[start : start + 65536]


async def test_the_stored_file_is_unreadable_without_its_orgs_key(tmp_path: Path) -> None:
    archive = gzip.compress(b'{"format": "orgplane-backup/1"} manifest.json' + os.urandom(2000))
    store, key = BackupStore(tmp_path), new_data_key()
    size, sha = await store.save(
        org_id=ORG, backup_id=BACKUP, chunks=_pieces(archive), max_bytes=10**6, data_key=key
    )
    assert (size, sha) == (len(archive), hashlib.sha256(archive).hexdigest())
    on_disk = store.path(org_id=ORG, backup_id=BACKUP).read_bytes()
    assert not on_disk.startswith(b"\x1f\x8b")  # no gzip magic
    assert archive[:200] not in on_disk
    assert b"orgplane-backup" not in on_disk
    assert store.sha256(org_id=ORG, backup_id=BACKUP, data_key=key) == sha
    with pytest.raises(ArchiveUnreadable):
        store.sha256(org_id=ORG, backup_id=BACKUP, data_key=new_data_key())  # another org's
    with pytest.raises(ArchiveUnreadable):
        store.sha256(org_id=ORG, backup_id=BACKUP, data_key=None)
    # Moved under another org's folder, it does not decrypt even with the right key.
    moved = store.path(org_id=OTHER_ORG, backup_id=BACKUP)
    moved.parent.mkdir()
    shutil.copyfile(store.path(org_id=ORG, backup_id=BACKUP), moved)
    with pytest.raises(ArchiveUnreadable):
        store.sha256(org_id=OTHER_ORG, backup_id=BACKUP, data_key=key)
