"""Each org's backup data key: made at its first backup, kept wrapped by the platform key,
rewrapped when the platform key rotates, shredded when the org's backups must end.

A data key is only ever in memory while an archive is written or read. Shredding empties the
wrapped key in the database (one conditional UPDATE, so a legal hold set meanwhile wins): from
then on no copy of the org's archives (the store, a volume snapshot, a file copied elsewhere)
can be decrypted by anyone, this deployment included.
"""

from __future__ import annotations

from typing import Final

import structlog
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.backups.crypto import ArchiveUnreadable, PlatformKeys, new_data_key
from control_plane.db.models import BackupKey, utcnow
from control_plane.runtime import Runtime, resolve_secret
from control_plane.settings import Settings
from orgplane_wire.problems import Conflict, ProblemError

log = structlog.get_logger("orgplane.backups.keys")

SHREDDED: Final = ""


class KeyShredded(ProblemError):
    status, code, title = 410, "backup_key_shredded", "Backup key shredded"


class LegalHoldActive(Conflict):
    code, title = "legal_hold", "Backups under legal hold"


def platform_keys(settings: Settings) -> PlatformKeys:
    """The platform key (``ORGPLANE_BACKUP_KEY``, else the deployment secret) and the
    previous ones listed in ``ORGPLANE_BACKUP_PREVIOUS_KEYS``."""
    backup = settings.backup
    current = backup.backup_key.get_secret_value() or resolve_secret(settings)
    raw = backup.backup_previous_keys.get_secret_value()
    return PlatformKeys(current, [item.strip() for item in raw.split(",") if item.strip()])


async def data_key(runtime: Runtime, org_id: str, *, create: bool) -> bytes | None:
    """The org's data key, unwrapped; with ``create`` a new one is made (and committed, in a
    session of its own, before any archive uses it). None when the org has none and
    ``create`` is false; 410 ``backup_key_shredded`` once it was shredded."""
    keys = platform_keys(runtime.settings)
    async with runtime.sessions() as db:
        row = await db.get(BackupKey, org_id)
        if row is not None:
            if row.wrapped_key == SHREDDED:
                raise KeyShredded("This org's backups were shredded; none can be read.")
            try:
                return keys.unwrap(row.wrapped_key, org_id=org_id)
            except ArchiveUnreadable as exc:
                log.error("backup data key does not unwrap", org_id=org_id, error=str(exc))
                raise ProblemError(
                    "The org's backup key cannot be unwrapped with the configured platform keys.",
                    status=503,
                    code="backup_key_unavailable",
                ) from None
        if not create:
            return None
        key = new_data_key()
        db.add(BackupKey(org_id=org_id, wrapped_key=keys.wrap(key, org_id=org_id)))
        try:
            await db.commit()
        except IntegrityError:  # another replica made it first: use theirs
            await db.rollback()
        else:
            return key
    return await data_key(runtime, org_id, create=False)


async def shred_key(db: AsyncSession, *, org_id: str) -> None:
    """Destroy the org's data key (a row is made if it had none, to record the shred); 409
    ``legal_hold`` while the org is under legal hold. Not committed."""
    if await db.get(BackupKey, org_id) is None:
        db.add(BackupKey(org_id=org_id, wrapped_key=SHREDDED, shredded_at=utcnow()))
        await db.flush()
        return
    result = await db.exec(
        update(BackupKey)
        .where(col(BackupKey.org_id) == org_id, col(BackupKey.legal_hold).is_(False))
        .values(wrapped_key=SHREDDED, shredded_at=utcnow())
        .execution_options(synchronize_session="fetch")
    )
    if result.rowcount == 0:
        raise LegalHoldActive("The org's backups are under legal hold; release it first.")


async def set_legal_hold(
    runtime: Runtime, db: AsyncSession, *, org_id: str, hold: bool, reason: str
) -> BackupKey:
    """Set or release the org's legal hold (its key is made if it had none). Not committed."""
    await data_key(runtime, org_id, create=True)
    row = await db.get(BackupKey, org_id)
    if row is None:  # pragma: no cover - made just above
        raise KeyShredded("The org has no backup key.")
    await db.refresh(row)
    row.legal_hold, row.legal_hold_reason = hold, reason if hold else ""
    row.legal_hold_changed_at = utcnow()
    db.add(row)
    return row


async def rewrap_keys(runtime: Runtime, db: AsyncSession) -> int:
    """Rewrap every live data key not wrapped by the current platform key; returns how many.
    The archives are untouched: only the wrapping changes. Commits."""
    keys = platform_keys(runtime.settings)
    rows = (await db.exec(select(BackupKey).where(col(BackupKey.wrapped_key) != SHREDDED))).all()
    changed = 0
    for row in rows:
        old = row.wrapped_key
        if old.partition(":")[0] == keys.current_id:
            continue
        new = keys.wrap(keys.unwrap(old, org_id=row.org_id), org_id=row.org_id)
        # Only if unchanged since read: a shred meanwhile must not be undone.
        result = await db.exec(
            update(BackupKey)
            .where(col(BackupKey.org_id) == row.org_id, col(BackupKey.wrapped_key) == old)
            .values(wrapped_key=new)
            .execution_options(synchronize_session=False)
        )
        changed += result.rowcount
    await db.commit()
    return changed
