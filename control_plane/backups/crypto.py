"""Envelope encryption of backup archives: the platform key wraps each org's data key, the
data key encrypts the org's archives in chunks.

Key hierarchy::

    platform key (ORGPLANE_BACKUP_KEY, else ORGPLANE_SECRET_KEY)
      └─ HKDF-SHA256 → key-encryption key (KEK), named by an 8-byte id
           └─ AES-256-GCM wraps → per-org data key (32 random bytes, in ``backup_key``)
                └─ HKDF-SHA256 with a per-file salt, org id and backup id → file key
                     └─ AES-256-GCM, chunk by chunk → the stored archive

An archive file (``orgplane-backup-enc/1``) is a 44-byte header (:data:`MAGIC`, the plaintext
chunk size as 4 bytes big-endian, a random 32-byte salt) and then the chunks, each the
AES-256-GCM ciphertext of up to ``chunk size`` plaintext bytes with its 16-byte tag. Chunk
``i`` uses the nonce ``i`` (11 bytes big-endian) followed by 1 for the last chunk and 0 for
the others, and the header as associated data (the STREAM construction of Hoang et al., as in
Tink's streaming AEAD and age): a reordered, dropped, truncated or appended chunk, a changed
header, or a file moved to another org or backup id fails to decrypt. Memory stays at one
chunk whatever the archive's size.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import os
import struct
from typing import BinaryIO, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC: Final = b"OPBKENC1"
CHUNK: Final = 1024 * 1024
TAG: Final = 16
_HEADER: Final = struct.Struct(">8sI32s")
_MAX_CHUNK: Final = 16 * 1024 * 1024
_KEK_INFO: Final = b"orgplane backup platform key v1"
_FILE_INFO: Final = b"orgplane backup archive v1"


class ArchiveUnreadable(ValueError):
    """The archive cannot be decrypted: another key, a damaged or truncated file."""


def _hkdf(material: bytes, *, salt: bytes | None, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(material)


def is_encrypted(head: bytes) -> bool:
    """Whether a stored file starting with ``head`` is an encrypted archive."""
    return head.startswith(MAGIC)


class PlatformKeys:
    """The current key-encryption key and the previous ones that may still unwrap.

    A wrapped key is ``<kek id>:<base64(nonce ‖ AES-256-GCM(data key, aad=org id))>``; the
    id says which platform key wrapped it, so a rotation rewraps only the others.
    """

    def __init__(self, current: str, previous: list[str] | None = None) -> None:
        if not current:
            raise ValueError("a platform key is required")
        self._keks: dict[str, bytes] = {}
        for material in [current, *(previous or [])]:
            kek = _hkdf(material.encode(), salt=None, info=_KEK_INFO)
            self._keks.setdefault(self._id_of(kek), kek)
        self.current_id = self._id_of(_hkdf(current.encode(), salt=None, info=_KEK_INFO))

    @staticmethod
    def _id_of(kek: bytes) -> str:
        return hmac.new(kek, b"orgplane backup kek id", hashlib.sha256).hexdigest()[:16]

    def wrap(self, data_key: bytes, *, org_id: str) -> str:
        """``data_key`` wrapped by the current KEK, bound to ``org_id``."""
        nonce = os.urandom(12)
        sealed = AESGCM(self._keks[self.current_id]).encrypt(nonce, data_key, org_id.encode())
        return f"{self.current_id}:{base64.b64encode(nonce + sealed).decode()}"

    def unwrap(self, wrapped: str, *, org_id: str) -> bytes:
        """The data key; :class:`ArchiveUnreadable` when no known KEK (or another org) fits."""
        kek_id, _, body = wrapped.partition(":")
        kek = self._keks.get(kek_id)
        if kek is None:
            raise ArchiveUnreadable(f"the platform key {kek_id} is not configured")
        try:
            raw = base64.b64decode(body, validate=True)
            return AESGCM(kek).decrypt(raw[:12], raw[12:], org_id.encode())
        except (InvalidTag, ValueError):  # ValueError: not base64, or too short to hold a tag
            raise ArchiveUnreadable("the data key does not unwrap") from None


def new_data_key() -> bytes:
    """A fresh random data key (AES-256)."""
    return AESGCM.generate_key(bit_length=256)


def _file_key(data_key: bytes, salt: bytes, org_id: str, backup_id: str) -> AESGCM:
    info = _FILE_INFO + f"|{org_id}|{backup_id}".encode()
    return AESGCM(_hkdf(data_key, salt=salt, info=info))


def _nonce(index: int, *, last: bool) -> bytes:
    return index.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


class ArchiveSealer:
    """Encrypts one archive as it streams: :meth:`feed` plaintext, then :meth:`finish`."""

    def __init__(self, data_key: bytes, *, org_id: str, backup_id: str) -> None:
        salt = os.urandom(32)
        self._header = _HEADER.pack(MAGIC, CHUNK, salt)
        self._aead = _file_key(data_key, salt, org_id, backup_id)
        self._buffer = bytearray()
        self._index = 0
        self._started = False

    def _seal(self, plaintext: bytes, *, last: bool) -> bytes:
        sealed = self._aead.encrypt(_nonce(self._index, last=last), plaintext, self._header)
        self._index += 1
        if not self._started:
            self._started = True
            return self._header + sealed
        return sealed

    def feed(self, data: bytes) -> bytes:
        """Ciphertext for every full chunk now buffered (possibly empty)."""
        self._buffer += data
        out = bytearray()
        # A full chunk is sealed only once more data follows: the last one is flagged as such.
        while len(self._buffer) > CHUNK:
            out += self._seal(bytes(self._buffer[:CHUNK]), last=False)
            del self._buffer[:CHUNK]
        return bytes(out)

    def finish(self) -> bytes:
        """The last chunk (the header too, for an empty archive)."""
        out = self._seal(bytes(self._buffer), last=True)
        self._buffer.clear()
        return out


class _DecryptingRaw(io.RawIOBase):
    def __init__(self, source: BinaryIO, data_key: bytes, *, org_id: str, backup_id: str) -> None:
        self._source = source
        header = source.read(_HEADER.size)
        if len(header) != _HEADER.size:
            raise ArchiveUnreadable("not an encrypted archive")
        magic, chunk, salt = _HEADER.unpack(header)
        if magic != MAGIC or not 0 < chunk <= _MAX_CHUNK:
            raise ArchiveUnreadable("not an encrypted archive")
        self._header, self._chunk = header, chunk
        self._aead = _file_key(data_key, salt, org_id, backup_id)
        self._index = 0
        self._plain = b""
        self._pos = 0
        self._done = False
        self._ahead = b""
        self._next_chunk()  # a wrong key fails here, before anyone reads a byte

    def readable(self) -> bool:
        return True

    def _next_chunk(self) -> None:
        sealed = self._ahead + self._source.read(self._chunk + TAG - len(self._ahead))
        self._ahead = self._source.read(1) if len(sealed) == self._chunk + TAG else b""
        last = not self._ahead
        if len(sealed) < TAG:
            raise ArchiveUnreadable("the archive is truncated")
        try:
            self._plain = self._aead.decrypt(_nonce(self._index, last=last), sealed, self._header)
            self._pos = 0
        except InvalidTag:
            raise ArchiveUnreadable(
                "the archive does not decrypt: another key, or a damaged or truncated file"
            ) from None
        self._index += 1
        self._done = last

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while self._pos == len(self._plain) and not self._done:
            self._next_chunk()
        size = min(len(buffer), len(self._plain) - self._pos)
        buffer[:size] = self._plain[self._pos : self._pos + size]
        self._pos += size
        return size

    def close(self) -> None:
        self._source.close()
        super().close()


def open_sealed(
    source: BinaryIO, data_key: bytes, *, org_id: str, backup_id: str
) -> io.BufferedReader:
    """A reader of the plaintext of the encrypted archive ``source`` (closing it closes
    ``source``); :class:`ArchiveUnreadable` on a read that does not authenticate."""
    raw = _DecryptingRaw(source, data_key, org_id=org_id, backup_id=backup_id)
    return io.BufferedReader(raw, buffer_size=CHUNK)
