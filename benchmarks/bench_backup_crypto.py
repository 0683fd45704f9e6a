"""What encryption at rest costs a backup: the store's encrypting write and decrypting read.

An archive of ``BENCH_BACKUP_MIB`` MiB (default 256, random bytes: gzip output does not
compress further) is streamed in 64 KiB pieces, as the instance sends it, through
``BackupStore.save`` (AES-256-GCM per 1 MiB chunk, SHA-256 of the plaintext, fsync), then read
back with ``BackupStore.sha256`` (decrypt and hash every chunk, as a restore's check does).
The baseline writes and hashes the same bytes unencrypted. Throughput is MiB per CPU-second of
this process (the work is CPU-bound; wall time on a shared machine includes waiting for a
core), best of 3 runs. The peak Python allocation during an encrypting save of 64 MiB
(tracemalloc) shows memory stays at a few chunks whatever the archive's size.

Target: 100 MiB per CPU-second each way, so a 10 GiB archive costs under two CPU-minutes to
encrypt, less than its transfer from the instance over a 1 Gbit/s network (about 90 s);
memory under 16 MiB.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from benchmarks import Result
from control_plane.backups.crypto import new_data_key
from control_plane.backups.store import BackupStore

MIB = 1024 * 1024
SIZE_MIB = int(os.environ.get("BENCH_BACKUP_MIB", "256"))
PIECE = 64 * 1024
ORG, BACKUP = "a" * 32, "b" * 32
ROUNDS = 3


async def _pieces(block: bytes, mib: int) -> AsyncIterator[bytes]:
    for _ in range(mib * MIB // len(block)):
        for start in range(0, len(block), PIECE):
            yield block[start : start + PIECE]


def _plain_write(path: Path, block: bytes, mib: int) -> None:
    digest = hashlib.sha256()
    with path.open("wb") as handle:
        for _ in range(mib * MIB // len(block)):
            digest.update(block)
            handle.write(block)
        handle.flush()
        os.fsync(handle.fileno())


def _cpu_seconds(action: Callable[[], object]) -> float:
    started = time.process_time()
    action()
    return time.process_time() - started


def _best_rate(action: Callable[[], object], mib: int) -> float:
    return max(mib / max(_cpu_seconds(action), 1e-9) for _ in range(ROUNDS))


def run() -> list[Result]:
    """Measure and answer the figures (see the module docstring)."""
    block, key = os.urandom(4 * MIB), new_data_key()
    with tempfile.TemporaryDirectory(prefix="orgplane-bench-") as tmp:
        store = BackupStore(Path(tmp))

        def save(mib: int = SIZE_MIB) -> object:
            return asyncio.run(
                store.save(
                    org_id=ORG,
                    backup_id=BACKUP,
                    chunks=_pieces(block, mib),
                    max_bytes=mib * MIB,
                    data_key=key,
                )
            )

        encrypt = _best_rate(save, SIZE_MIB)
        decrypt = _best_rate(
            lambda: store.sha256(org_id=ORG, backup_id=BACKUP, data_key=key), SIZE_MIB
        )
        plain = _best_rate(lambda: _plain_write(Path(tmp) / "plain", block, SIZE_MIB), SIZE_MIB)
        tracemalloc.start()
        save(64)
        peak = tracemalloc.get_traced_memory()[1] / MIB
        tracemalloc.stop()
    target = "MiB/CPU-s >= 100"
    return [
        Result(f"encrypting save, {SIZE_MIB} MiB", round(encrypt, 1), "MiB/CPU-s", target,
               encrypt >= 100),
        Result(f"decrypting read + SHA-256, {SIZE_MIB} MiB", round(decrypt, 1), "MiB/CPU-s",
               target, decrypt >= 100),
        Result(f"baseline: plaintext write + SHA-256, {SIZE_MIB} MiB", round(plain, 1),
               "MiB/CPU-s"),
        Result("peak Python memory, encrypting save of 64 MiB", round(peak, 2), "MiB",
               "<= 16", peak <= 16),
    ]  # fmt: skip
