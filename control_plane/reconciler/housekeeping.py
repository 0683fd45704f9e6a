"""The reconciler's minute jobs, each on its own: one failing never skips the others.

Each job gets its own database session and its own error handling: a DNS server that times out
during the custom-domain re-check does not keep a signing key from rotating, nor an org's
scheduled backup from being taken. A failure is logged (a store outage as a warning, anything
else with its traceback) and the job runs again at the next round.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Final

from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.backups.retention import expire_deleted_orgs
from control_plane.backups.schedule import run_due_backups
from control_plane.reconciler.reconcile import Context
from control_plane.reconciler.redis_users import restore_lost_redis_users
from control_plane.routing.domains import drop_expired_claims
from control_plane.routing.verify import TxtResolver, reverify_due
from control_plane.store_errors import log_job_failure
from control_plane.tokens.rotation import rotate_if_due

Job = Callable[[Context, AsyncSession], Awaitable[object]]


async def _drop_expired_claims(ctx: Context, db: AsyncSession) -> None:
    await drop_expired_claims(db)


async def _reverify_domains(ctx: Context, db: AsyncSession) -> None:
    routing = ctx.runtime.settings.routing
    await reverify_due(
        db,
        resolver=TxtResolver(address=routing.dns_resolver),
        every=timedelta(hours=routing.domain_recheck_hours),
        claim_ttl=timedelta(hours=routing.domain_claim_ttl_hours),
    )


async def _rotate_signing_key(ctx: Context, db: AsyncSession) -> None:
    await rotate_if_due(ctx.runtime, db)


async def _restore_redis_users(ctx: Context, db: AsyncSession) -> None:
    if ctx.redis_admin is not None:
        await restore_lost_redis_users(db, redis_admin=ctx.redis_admin, box=ctx.runtime.box)


async def _take_scheduled_backups(ctx: Context, db: AsyncSession) -> None:
    await run_due_backups(ctx.runtime, db)


async def _expire_deleted_org_backups(ctx: Context, db: AsyncSession) -> None:
    await expire_deleted_orgs(ctx.runtime, db)


#: In order; each job commits its own work.
JOBS: Final[dict[str, Job]] = {
    "expired domain claims": _drop_expired_claims,
    "custom domain re-check": _reverify_domains,
    "signing key rotation": _rotate_signing_key,
    "org Redis users": _restore_redis_users,
    "scheduled backups": _take_scheduled_backups,
    "deleted orgs' backups past retention": _expire_deleted_org_backups,
}


async def run_housekeeping(ctx: Context) -> dict[str, str]:
    """Run every job once; returns the failed ones (name: error), for logs and tests."""
    failed: dict[str, str] = {}
    for name, job in JOBS.items():
        async with ctx.runtime.sessions() as db:
            try:
                await job(ctx, db)
            except Exception as exc:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
                log_job_failure("housekeeping job failed", exc, job=name)
                failed[name] = f"{type(exc).__name__}: {exc}"
                await db.rollback()
    return failed
