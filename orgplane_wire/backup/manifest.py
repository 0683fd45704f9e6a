"""The backup archive format ``orgplane-backup/1``: its manifest and a streaming verifier.

An archive is a gzip-compressed tar whose first member is ``manifest.json``; every other member
is a regular file named by a manifest entry, and nothing else is allowed. Paths come from an
allowlist (``data/instance.db`` and ``data/files/<id>``), so no member can name ``..``, an
absolute path, a link or a device. Reading is bounded: the decompressed stream stops at
``max_bytes`` and every member at its declared size, so a gzip bomb costs at most that much;
past :data:`RATIO_FLOOR` bytes the stream may not expand more than :data:`MAX_RATIO` times the
compressed bytes read (``compression_ratio_exceeded``); the members are at most the manifest's
entries, at most :data:`MAX_ENTRIES`; and with a storage quota, the files' bytes are counted
as they are written, not as any header or manifest declares them, and reading stops as soon
as they would exceed it (``storage_quota_exceeded``).

Both sides use this module (the control plane checks an import before storing it), so it
imports nothing but the standard library.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import IO, TYPE_CHECKING, Any, BinaryIO, Final, cast

if TYPE_CHECKING:  # imported where archives are read: an instance starts without them
    import gzip
    import tarfile

FORMAT: Final = "orgplane-backup/1"
MANIFEST_NAME: Final = "manifest.json"
DB_ENTRY: Final = "data/instance.db"
FILES_PREFIX: Final = "data/files/"
MAX_MANIFEST_BYTES: Final = 32 * 1024 * 1024
MAX_ENTRIES: Final = 200_000
CHUNK: Final = 1024 * 1024
#: How many times its compressed size the decompressed stream may grow (gzip's own limit is
#: about 1032); backups of real data stay far below (SQLite pages and files: under 20).
MAX_RATIO: Final = 200
#: Decompressed bytes before the ratio is enforced (a small archive of a nearly empty
#: database may expand more).
RATIO_FLOOR: Final = 16 * 1024 * 1024
#: The codes of archives refused for a bound rather than a fault (HTTP 413).
TOO_LARGE: Final = frozenset({"archive_too_large", "storage_quota_exceeded"})
_FILE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ArchiveError(Exception):
    """The archive is not one this instance can restore; ``code`` is the stable problem code."""

    def __init__(self, message: str, *, code: str = "invalid_archive") -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Entry:
    """One file of the archive: its path in the archive, size in bytes and SHA-256 (hex)."""

    path: str
    size: int
    sha256: str


def entries_checksum(entries: Iterable[Entry]) -> str:
    """SHA-256 over ``"<sha256> <size> <path>\\n"`` of every entry, sorted by path."""
    digest = hashlib.sha256()
    for entry in sorted(entries, key=lambda e: e.path):
        digest.update(f"{entry.sha256} {entry.size} {entry.path}\n".encode())
    return digest.hexdigest()


def check_entry_path(path: Any) -> str:
    """``path`` if it is an allowed entry path, else :class:`ArchiveError`."""
    if isinstance(path, str) and (
        path == DB_ENTRY
        or (path.startswith(FILES_PREFIX) and _FILE_ID.match(path[len(FILES_PREFIX) :]))
    ):
        return path
    raise ArchiveError(f"entry path not allowed: {str(path)[:100]!r}")


@dataclass(frozen=True)
class Manifest:
    """What an archive holds and where it came from."""

    format: str
    org_id: str
    org_slug: str
    schema_version: int
    created_at: str
    entries: tuple[Entry, ...]
    checksum: str

    @property
    def total_bytes(self) -> int:
        """Bytes of all entries (uncompressed)."""
        return sum(e.size for e in self.entries)

    def to_json(self) -> bytes:
        """The ``manifest.json`` bytes."""
        body = asdict(self)
        body["entries"] = [asdict(e) for e in self.entries]
        return json.dumps(body, indent=1, sort_keys=True).encode()

    def summary(self) -> dict[str, Any]:
        """The manifest without its per-file entries (what the control plane keeps)."""
        return {
            "format": self.format,
            "org_id": self.org_id,
            "org_slug": self.org_slug,
            "schema_version": self.schema_version,
            "created_at": self.created_at,
            "checksum": self.checksum,
            "entries": len(self.entries),
            "total_bytes": self.total_bytes,
        }


def build_manifest(
    *, org_id: str, org_slug: str, schema_version: int, created_at: str, entries: list[Entry]
) -> Manifest:
    """A manifest over ``entries`` with its checksum."""
    ordered = tuple(sorted(entries, key=lambda e: e.path))
    return Manifest(
        FORMAT, org_id, org_slug, schema_version, created_at, ordered, entries_checksum(ordered)
    )


def _field(body: dict[str, Any], name: str, kind: type) -> Any:
    value = body.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ArchiveError(f"manifest field {name!r} is missing or not a {kind.__name__}")
    return value


def parse_manifest(raw: bytes) -> Manifest:
    """The manifest in ``raw``; refuses another format, bad entries and a wrong checksum."""
    try:
        body = json.loads(raw)
    except ValueError:
        raise ArchiveError("manifest.json is not JSON") from None
    if not isinstance(body, dict):
        raise ArchiveError("manifest.json is not an object")
    if body.get("format") != FORMAT:
        raise ArchiveError(
            f"unsupported archive format {str(body.get('format'))[:50]!r}; expected {FORMAT}",
            code="unsupported_backup_format",
        )
    raw_entries = _field(body, "entries", list)
    if len(raw_entries) > MAX_ENTRIES:
        raise ArchiveError("too many entries")
    entries: list[Entry] = []
    for item in raw_entries:
        if not isinstance(item, dict):
            raise ArchiveError("manifest entry is not an object")
        size, sha = _field(item, "size", int), _field(item, "sha256", str)
        if size < 0 or not _SHA256.match(sha):
            raise ArchiveError("manifest entry has a bad size or sha256")
        entries.append(Entry(check_entry_path(item.get("path")), size, sha))
    if len({e.path for e in entries}) != len(entries):
        raise ArchiveError("manifest names an entry twice")
    if DB_ENTRY not in {e.path for e in entries}:
        raise ArchiveError("manifest has no database entry")
    manifest = build_manifest(
        org_id=_field(body, "org_id", str),
        org_slug=_field(body, "org_slug", str),
        schema_version=_field(body, "schema_version", int),
        created_at=_field(body, "created_at", str),
        entries=entries,
    )
    if body.get("checksum") != manifest.checksum:
        raise ArchiveError("manifest checksum does not match its entries", code="checksum_mismatch")
    return manifest


class _Counted:
    """The compressed input, counting the bytes read from it."""

    def __init__(self, inner: IO[bytes]) -> None:
        self.inner, self.count = inner, 0

    def read(self, size: int = -1) -> bytes:
        data = self.inner.read(size)
        self.count += len(data)
        return data

    def readable(self) -> bool:
        return True


class _Bounded:
    """A read-only stream that fails once more than ``limit`` bytes were read from it, or
    (past :data:`RATIO_FLOOR`) more than :data:`MAX_RATIO` times what ``compressed`` gave."""

    def __init__(self, inner: gzip.GzipFile, limit: int, compressed: _Counted) -> None:
        self.inner, self.limit, self.count, self.compressed = inner, limit, 0, compressed

    def read(self, size: int = -1) -> bytes:
        data = self.inner.read(size if size >= 0 else CHUNK)
        self.count += len(data)
        if self.count > self.limit:
            raise ArchiveError("archive is larger than allowed", code="archive_too_large")
        if self.count > RATIO_FLOOR and self.count > MAX_RATIO * self.compressed.count:
            raise ArchiveError(
                f"archive expands more than {MAX_RATIO} times its compressed size",
                code="compression_ratio_exceeded",
            )
        return data

    def readable(self) -> bool:
        return True


class _Quota:
    """The files' bytes written so far, against the org's storage quota (None: no quota)."""

    def __init__(self, limit: int | None) -> None:
        self.limit, self.used = limit, 0

    def spend(self, entry: Entry, size: int) -> None:
        if not entry.path.startswith(FILES_PREFIX):
            return
        self.used += size
        if self.limit is not None and self.used > self.limit:
            raise ArchiveError(
                f"the archive's files exceed the org's storage quota of {self.limit} bytes",
                code="storage_quota_exceeded",
            )


def _copy_member(source: IO[bytes], entry: Entry, out: BinaryIO | None, quota: _Quota) -> None:
    digest, remaining = hashlib.sha256(), entry.size
    while remaining:
        chunk = source.read(min(CHUNK, remaining))
        if not chunk:
            raise ArchiveError(f"entry {entry.path} is truncated", code="checksum_mismatch")
        remaining -= len(chunk)
        quota.spend(entry, len(chunk))  # before the bytes land
        digest.update(chunk)
        if out is not None:
            out.write(chunk)
    if digest.hexdigest() != entry.sha256:
        raise ArchiveError(
            f"entry {entry.path} does not match its sha256", code="checksum_mismatch"
        )


def read_archive(
    raw: IO[bytes],
    *,
    max_bytes: int,
    open_entry: Callable[[Entry], BinaryIO] | None = None,
    storage_quota: int | None = None,
) -> Manifest:
    """Read and verify a whole archive from ``raw``, writing each entry to ``open_entry(entry)``
    (or only checking it when None). Raises :class:`ArchiveError`; nothing is trusted before
    the manifest and every entry have been checked. ``storage_quota``: the most bytes of
    files the target org may hold, counted on the bytes themselves."""
    import gzip
    import tarfile

    compressed = _Counted(raw)
    try:
        with gzip.GzipFile(fileobj=cast(IO[bytes], compressed), mode="rb") as unzipped:
            stream = cast(IO[bytes], _Bounded(unzipped, max_bytes, compressed))
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                return _read_members(tar, open_entry, _Quota(storage_quota))
    except (tarfile.TarError, OSError, EOFError, gzip.BadGzipFile, UnicodeError) as exc:
        raise ArchiveError(f"not a readable archive ({type(exc).__name__})") from None


def _read_members(
    tar: tarfile.TarFile, open_entry: Callable[[Entry], BinaryIO] | None, quota: _Quota
) -> Manifest:
    manifest: Manifest | None = None
    expected: dict[str, Entry] = {}
    for member in tar:
        if not member.isreg():
            raise ArchiveError(f"member {member.name[:100]!r} is not a regular file")
        source = tar.extractfile(member)
        if source is None:
            raise ArchiveError("unreadable member")
        if manifest is None:
            if member.name != MANIFEST_NAME or member.size > MAX_MANIFEST_BYTES:
                raise ArchiveError("the first member must be manifest.json")
            manifest = parse_manifest(source.read(member.size))
            expected = {e.path: e for e in manifest.entries}
            continue
        entry = expected.pop(check_entry_path(member.name), None)
        if entry is None:
            raise ArchiveError(f"member {member.name[:100]!r} is not in the manifest (or twice)")
        if member.size != entry.size:
            raise ArchiveError(f"entry {entry.path} has the wrong size", code="checksum_mismatch")
        out = open_entry(entry) if open_entry is not None else None
        try:
            _copy_member(source, entry, out, quota)
        finally:
            if out is not None:
                out.close()
    if manifest is None:
        raise ArchiveError("the archive is empty")
    if expected:
        raise ArchiveError(
            f"{len(expected)} manifest entries are missing from the archive",
            code="checksum_mismatch",
        )
    return manifest


def peek_manifest(raw: IO[bytes]) -> Manifest:
    """The manifest of an archive, reading only its first member (the rest is not checked)."""
    import gzip
    import tarfile

    compressed = _Counted(raw)
    try:
        with gzip.GzipFile(fileobj=cast(IO[bytes], compressed), mode="rb") as unzipped:
            limit = MAX_MANIFEST_BYTES + 64 * 1024
            stream = cast(IO[bytes], _Bounded(unzipped, limit, compressed))
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                member = tar.next()
                source = tar.extractfile(member) if member is not None else None
                if member is None or member.name != MANIFEST_NAME or source is None:
                    raise ArchiveError("the first member must be manifest.json")
                if member.size > MAX_MANIFEST_BYTES:
                    raise ArchiveError("manifest.json is too large")
                return parse_manifest(source.read(member.size))
    except (tarfile.TarError, OSError, EOFError, gzip.BadGzipFile, UnicodeError) as exc:
        raise ArchiveError(f"not a readable archive ({type(exc).__name__})") from None
