"""The reconciler's minute jobs run each on its own (control_plane/reconciler/housekeeping.py):
one failing neither skips the jobs after it nor leaves its half-done writes behind."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlmodel import select

from control_plane.db.models import SigningKey, utcnow
from control_plane.reconciler import housekeeping
from control_plane.reconciler.loop import Reconciler
from control_plane.reconciler.reconcile import Context
from control_plane.runtime import Runtime
from tests.support.api import direct_db, runtime_of


def context_of(client: AsyncTestClient[Any]) -> Context:
    """A reconciler context on the app's database, from the test's own event loop."""
    app_runtime = runtime_of(client)
    return Context(Runtime.build(app_runtime.settings), app_runtime.provisioner)


async def _age_signing_keys(client: AsyncTestClient[Any], days: int) -> set[str]:
    async with direct_db(client) as db:
        keys = (await db.exec(select(SigningKey))).all()
        for key in keys:
            key.active_from = key.created_at = utcnow() - timedelta(days=days)
            db.add(key)
        await db.commit()
        return {key.kid for key in keys}


async def test_a_failing_job_skips_none_of_the_others(
    client: AsyncTestClient[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    before = await _age_signing_keys(client, days=400)  # rotation is due
    assert before

    async def broken(db: Any) -> int:
        db.add(SigningKey(kid="half-done", alg="EdDSA", private_key_enc="x", public_jwk={}))
        await db.flush()
        raise RuntimeError("the claims job broke")

    monkeypatch.setattr(housekeeping, "drop_expired_claims", broken)
    ctx = context_of(client)
    try:
        await Reconciler(ctx)._housekeeping()
    finally:
        await ctx.runtime.close()

    async with direct_db(client) as db:
        kids = set((await db.exec(select(SigningKey.kid))).all())
    assert "half-done" not in kids  # the failed job's writes were rolled back
    assert kids - before, "the signing key did not rotate after the claims job failed"


async def test_every_job_reports_its_own_failure(
    client: AsyncTestClient[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("down")

    monkeypatch.setattr(housekeeping, "reverify_due", broken)
    monkeypatch.setattr(housekeeping, "run_due_backups", broken)
    ctx = context_of(client)
    try:
        failed = await housekeeping.run_housekeeping(ctx)
    finally:
        await ctx.runtime.close()
    assert failed == {
        "custom domain re-check": "RuntimeError: down",
        "scheduled backups": "RuntimeError: down",
    }
