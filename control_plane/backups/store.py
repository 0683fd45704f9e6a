"""The backup store: encrypted archives on a directory (a local disk or a mounted volume).

An archive lives at ``<root>/<org_id>/<backup_id>.tar.gz.enc``, encrypted with its org's data
key (``control_plane.backups.crypto``). Both ids must be 32 hex characters, and the resolved
path must stay under the root, so no request can name a file outside it. A write goes to a
temporary name, is fsynced and renamed into place, so a reader never sees half an archive and
a crash leaves only a ``.partial`` file behind. Sizes and SHA-256 digests are of the plaintext
archive (what a download or an export gives).

Archives written before encryption (``<backup_id>.tar.gz``, plaintext) are read only with
``ORGPLANE_BACKUP_READ_PLAINTEXT`` set; otherwise they count as missing.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from collections.abc import AsyncGenerator, AsyncIterable
from pathlib import Path
from typing import BinaryIO

from control_plane.backups.crypto import ArchiveSealer, ArchiveUnreadable, open_sealed
from control_plane.settings import Settings
from orgplane_wire.backup.durable import fsync_dir
from orgplane_wire.problems import ProblemError

_ID = re.compile(r"^[0-9a-f]{32}$")
CHUNK = 1024 * 1024


class ArchiveTooLarge(ProblemError):
    status, code, title = 413, "archive_too_large", "Archive too large"


def store_root(settings: Settings) -> Path:
    """The configured backup directory (default ``<data_dir>/backups``)."""
    configured = settings.backup.backup_dir.strip()
    return Path(configured) if configured else settings.server.data_dir / "backups"


def store_for(settings: Settings) -> BackupStore:
    """The backup store the settings name."""
    backup = settings.backup
    return BackupStore(store_root(settings), read_plaintext=backup.backup_read_plaintext)


async def read_chunks(reader: BinaryIO) -> AsyncGenerator[bytes, None]:
    """``reader`` in chunks, read off the event loop; closed at the end."""
    try:
        while chunk := await asyncio.to_thread(reader.read, CHUNK):
            yield chunk
    finally:
        await asyncio.to_thread(reader.close)


class BackupStore:
    """Archives on a directory (see the module docstring)."""

    def __init__(self, root: Path, *, read_plaintext: bool = False) -> None:
        self.root = root.resolve()
        self.read_plaintext = read_plaintext

    def path(self, *, org_id: str, backup_id: str, suffix: str = ".tar.gz.enc") -> Path:
        """Where an archive lives; ValueError for ids that could reach elsewhere."""
        if not (_ID.match(org_id) and _ID.match(backup_id)):
            raise ValueError("backup and org ids are 32 hex characters")
        path = (self.root / org_id / f"{backup_id}{suffix}").resolve()
        if not path.is_relative_to(self.root):
            raise ValueError("path outside the backup store")
        return path

    def legacy_path(self, *, org_id: str, backup_id: str) -> Path:
        """Where a plaintext archive written before encryption lives."""
        return self.path(org_id=org_id, backup_id=backup_id, suffix=".tar.gz")

    def open(self, *, org_id: str, backup_id: str, data_key: bytes | None) -> BinaryIO:
        """The plaintext archive, decrypted as it is read (blocking); FileNotFoundError when
        it is missing, ``ArchiveUnreadable`` when it does not decrypt under ``data_key``."""
        try:
            handle = self.path(org_id=org_id, backup_id=backup_id).open("rb")
        except FileNotFoundError:
            if not self.read_plaintext:
                raise
            return self.legacy_path(org_id=org_id, backup_id=backup_id).open("rb")
        try:
            if data_key is None:
                raise ArchiveUnreadable("the org has no backup key")
            return open_sealed(handle, data_key, org_id=org_id, backup_id=backup_id)
        except BaseException:
            handle.close()
            raise

    async def chunks(
        self, *, org_id: str, backup_id: str, data_key: bytes | None
    ) -> AsyncGenerator[bytes, None]:
        """The plaintext archive in chunks, read and decrypted off the event loop."""
        reader = await asyncio.to_thread(
            self.open, org_id=org_id, backup_id=backup_id, data_key=data_key
        )
        async for chunk in read_chunks(reader):
            yield chunk

    async def save(
        self,
        *,
        org_id: str,
        backup_id: str,
        chunks: AsyncIterable[bytes],
        max_bytes: int,
        data_key: bytes,
    ) -> tuple[int, str]:
        """Encrypt ``chunks`` into the archive; returns the plaintext's size and SHA-256 (hex).

        Raises :class:`ArchiveTooLarge` past ``max_bytes``; nothing is left behind on failure.
        """
        final = self.path(org_id=org_id, backup_id=backup_id)
        temp = final.with_name(f".{backup_id}.partial")
        await asyncio.to_thread(final.parent.mkdir, parents=True, exist_ok=True)
        digest, size, buffer = hashlib.sha256(), 0, bytearray()
        sealer = ArchiveSealer(data_key, org_id=org_id, backup_id=backup_id)
        handle = await asyncio.to_thread(temp.open, "wb")
        try:
            try:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > max_bytes:
                        raise ArchiveTooLarge(
                            f"The archive is larger than {max_bytes} bytes.", limit=max_bytes
                        )
                    digest.update(chunk)
                    buffer += sealer.feed(chunk)
                    if len(buffer) >= CHUNK:
                        await asyncio.to_thread(handle.write, bytes(buffer))
                        buffer.clear()
                buffer += sealer.finish()
                await asyncio.to_thread(handle.write, bytes(buffer))
                await asyncio.to_thread(handle.flush)
                await asyncio.to_thread(os.fsync, handle.fileno())
            finally:
                await asyncio.to_thread(handle.close)
            await asyncio.to_thread(os.replace, temp, final)
            await asyncio.to_thread(fsync_dir, final.parent)
        except BaseException:
            await asyncio.to_thread(temp.unlink, missing_ok=True)
            raise
        return size, digest.hexdigest()

    def sha256(self, *, org_id: str, backup_id: str, data_key: bytes | None) -> str | None:
        """SHA-256 (hex) of the plaintext archive, or None when it is missing (blocking);
        ``ArchiveUnreadable`` when it does not decrypt."""
        digest = hashlib.sha256()
        try:
            with self.open(org_id=org_id, backup_id=backup_id, data_key=data_key) as handle:
                while chunk := handle.read(CHUNK):
                    digest.update(chunk)
        except FileNotFoundError:
            return None
        return digest.hexdigest()

    def delete(self, *, org_id: str, backup_id: str) -> None:
        """Remove the archive, encrypted or legacy (absent counts as removed; blocking)."""
        self.path(org_id=org_id, backup_id=backup_id).unlink(missing_ok=True)
        self.legacy_path(org_id=org_id, backup_id=backup_id).unlink(missing_ok=True)

    def delete_org(self, *, org_id: str) -> int:
        """Remove every archive of an org and its directory; returns how many (blocking)."""
        if not _ID.match(org_id):
            raise ValueError("org ids are 32 hex characters")
        folder = self.root / org_id
        if not folder.is_dir():
            return 0
        removed = 0
        for item in folder.iterdir():
            if item.is_file():
                item.unlink(missing_ok=True)
                removed += 1
        folder.rmdir()
        return removed
