"""The backup store: archives on a directory (a local disk or a mounted volume).

An archive lives at ``<root>/<org_id>/<backup_id>.tar.gz``. Both ids must be 32 hex
characters, and the resolved path must stay under the root, so no request can name a file
outside it. A write goes to a temporary name, is fsynced and renamed into place, so a reader
never sees half an archive and a crash leaves only a ``.partial`` file behind.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from collections.abc import AsyncIterable
from pathlib import Path

from control_plane.errors import ProblemError
from control_plane.settings import Settings

_ID = re.compile(r"^[0-9a-f]{32}$")
CHUNK = 1024 * 1024


class ArchiveTooLarge(ProblemError):
    status, code, title = 413, "archive_too_large", "Archive too large"


def store_root(settings: Settings) -> Path:
    """The configured backup directory (default ``<data_dir>/backups``)."""
    configured = settings.backup.backup_dir.strip()
    return Path(configured) if configured else settings.server.data_dir / "backups"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BackupStore:
    """Archives on a directory (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def path(self, *, org_id: str, backup_id: str) -> Path:
        """Where an archive lives; ValueError for ids that could reach elsewhere."""
        if not (_ID.match(org_id) and _ID.match(backup_id)):
            raise ValueError("backup and org ids are 32 hex characters")
        path = (self.root / org_id / f"{backup_id}.tar.gz").resolve()
        if not path.is_relative_to(self.root):
            raise ValueError("path outside the backup store")
        return path

    async def save(
        self, *, org_id: str, backup_id: str, chunks: AsyncIterable[bytes], max_bytes: int
    ) -> tuple[int, str]:
        """Write ``chunks`` as the archive; returns its size and SHA-256 (hex).

        Raises :class:`ArchiveTooLarge` past ``max_bytes``; nothing is left behind on failure.
        """
        final = self.path(org_id=org_id, backup_id=backup_id)
        temp = final.with_name(f".{backup_id}.partial")
        await asyncio.to_thread(final.parent.mkdir, parents=True, exist_ok=True)
        digest, size, buffer = hashlib.sha256(), 0, bytearray()
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
                    buffer += chunk
                    if len(buffer) >= CHUNK:
                        await asyncio.to_thread(handle.write, bytes(buffer))
                        buffer.clear()
                await asyncio.to_thread(handle.write, bytes(buffer))
                await asyncio.to_thread(handle.flush)
                await asyncio.to_thread(os.fsync, handle.fileno())
            finally:
                await asyncio.to_thread(handle.close)
            await asyncio.to_thread(os.replace, temp, final)
            await asyncio.to_thread(_fsync_dir, final.parent)
        except BaseException:
            await asyncio.to_thread(temp.unlink, missing_ok=True)
            raise
        return size, digest.hexdigest()

    def sha256(self, *, org_id: str, backup_id: str) -> str | None:
        """SHA-256 (hex) of the stored archive, or None when it is missing (blocking)."""
        digest = hashlib.sha256()
        try:
            with self.path(org_id=org_id, backup_id=backup_id).open("rb") as handle:
                while chunk := handle.read(CHUNK):
                    digest.update(chunk)
        except FileNotFoundError:
            return None
        return digest.hexdigest()

    def delete(self, *, org_id: str, backup_id: str) -> None:
        """Remove the archive (absent counts as removed; blocking)."""
        self.path(org_id=org_id, backup_id=backup_id).unlink(missing_ok=True)
