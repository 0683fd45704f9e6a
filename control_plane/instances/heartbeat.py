"""Instance credentials and heartbeats: authenticate, ignore replays, roll usage, answer config.

Credential format: ``opi_<org_id>.<secret>``. The org id finds the Instance row by primary key;
only the SHA-256 of the whole credential is stored. :func:`issue_instance_credential` creates or
rotates it and returns the plaintext once.

A heartbeat belongs to a *run* of the instance (its ``instance_id`` and ``started_at``, kept in
``Instance.usage_reported``; ``Instance.started_at`` is the reconciler's). Within a
run ``seq`` only grows: a heartbeat whose ``seq`` is not above the last one seen is a replay and
is answered ``accepted: false`` with no write (200, so a retried request is harmless). A run
that started earlier than the recorded one is stale and ignored the same way. Counters restart
at zero with every run; the deltas since the last written heartbeat are added to the org's
:class:`UsageSample` of the hour.

Writes are coalesced: the row is written when status, version, run or any counter changed, or
when :data:`WRITE_EVERY_INTERVALS` heartbeat intervals passed since the last write (so
``last_heartbeat_at`` is never older than that for a live instance). The last accepted ``seq``
of the run is also kept in the store entry of :mod:`control_plane.instances.gate`, so replays
are caught between writes.

What a heartbeat costs: one indexed read of the instance and its org by primary key
(:func:`authenticate_instance`, outside a transaction), one store read and one store write;
a heartbeat that changed something, or is due, adds the row's UPDATE, the usage upsert and the
commit. The org's configuration is read on every heartbeat, so a change reaches the instance
with its next heartbeat.

The credentials live in :mod:`control_plane.instances.credentials`, the rules that judge a
heartbeat against its row in :mod:`control_plane.instances.judging`; both are re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.branding.resolve import instance_branding
from control_plane.db.models import Instance, InstanceEvent, Org, utcnow
from control_plane.instances.credentials import CREDENTIAL_PREFIX as CREDENTIAL_PREFIX
from control_plane.instances.credentials import authenticate_instance as authenticate_instance
from control_plane.instances.credentials import credential_org as credential_org
from control_plane.instances.credentials import (
    issue_instance_credential as issue_instance_credential,
)
from control_plane.instances.gate import HeartbeatGate
from control_plane.instances.judging import MONOTONIC as MONOTONIC
from control_plane.instances.judging import USAGE_BUCKET as USAGE_BUCKET
from control_plane.instances.judging import WRITE_EVERY_INTERVALS as WRITE_EVERY_INTERVALS
from control_plane.instances.judging import HeartbeatIn as HeartbeatIn
from control_plane.instances.judging import RowState as RowState
from control_plane.instances.judging import UsageIn as UsageIn
from control_plane.instances.judging import Verdict as Verdict
from control_plane.instances.judging import judge as judge
from control_plane.instances.judging import run_of
from control_plane.instances.judging import usage_params as usage_params
from control_plane.instances.judging import usage_upsert as usage_upsert
from control_plane.orgs.hierarchy import effective_limits, own_quota
from control_plane.runtime import Runtime
from orgplane_wire.contract import HeartbeatAnswer, Limits

log = structlog.get_logger("orgplane.instances")


@dataclass(frozen=True)
class Outcome:
    """What processing a heartbeat did."""

    accepted: bool
    wrote: bool
    new_run: bool = False


class HeartbeatProcessor:
    """Applies one authenticated heartbeat to an instance's row and the org's usage."""

    def __init__(self, runtime: Runtime, db: AsyncSession) -> None:
        self.runtime, self.db = runtime, db
        self.interval = runtime.settings.provisioning.heartbeat_interval

    async def process(self, instance: Instance, body: HeartbeatIn, gate: HeartbeatGate) -> Outcome:
        """Record the heartbeat (or ignore a replay); commits when it writes.

        ``gate`` knows the last seq accepted between row writes and learns this one; the caller
        saves it.
        """
        now = utcnow()
        verdict = judge(
            RowState.of(instance),
            body,
            now=now,
            interval=self.interval,
            gate_seq=gate.last_seq(run_of(body)),
        )
        if not verdict.accepted:
            return Outcome(accepted=False, wrote=False)
        gate.accepted(run=verdict.run, seq=body.seq)
        if not verdict.writes:
            return Outcome(accepted=True, wrote=False)
        # The row may come from the guard's session (detached): attach it before changing it,
        # so the flush writes exactly the changed columns without reading the row again.
        self.db.add(instance)
        for name, value in verdict.values(body, now).items():
            setattr(instance, name, value)
        if not verdict.same_run:
            self.db.add(
                InstanceEvent(
                    org_id=instance.org_id,
                    kind="instance.started",
                    message=f"run {verdict.run} (version {body.version})",
                )
            )
        if verdict.changed:
            dialect = self.db.get_bind().dialect.name
            await self.db.exec(
                usage_upsert(dialect), params=usage_params(instance.org_id, verdict, now)
            )
        await self.db.commit()
        return Outcome(accepted=True, wrote=True, new_run=not verdict.same_run)

    async def answer(
        self,
        org: Org,
        outcome: Outcome,
        *,
        contract_version: int,
        via_redis: bool = False,
        behind: bool = True,
    ) -> HeartbeatAnswer:
        """The configuration the instance must run with (no query for a root org whose
        instance is not ``behind``: branding is resolved only for one that is)."""
        base_url = self.runtime.settings.server.base_url
        return await answer_for(
            self.db,
            org,
            accepted=outcome.accepted,
            interval=self.interval,
            via_redis=via_redis,
            contract_version=contract_version,
            branding_base_url=base_url if behind else None,
        )


async def answer_for(
    db: AsyncSession,
    org: Org,
    *,
    accepted: bool,
    interval: float,
    via_redis: bool,
    contract_version: int,
    branding_base_url: str | None = None,
) -> HeartbeatAnswer:
    """The answer to a heartbeat of ``org``'s instance: its configuration, and ``via: redis``
    when its next heartbeats go to Redis (see :mod:`control_plane.instances.ingest`).
    ``branding_base_url``: include the org's branding, its logo URL under that base (None:
    leave it out, for an instance that already runs the current ``config_version``)."""
    limits = await effective_limits(db, org) if org.parent_id else own_quota(org)
    answer: HeartbeatAnswer = {
        "accepted": accepted,
        "config_version": org.config_version,
        "interval": interval,
        "limits": Limits(**limits),  # type: ignore[typeddict-item]
        "contract_version": contract_version,
    }
    if via_redis:
        answer["via"] = "redis"
    if branding_base_url is not None:
        answer["branding"] = await instance_branding(db, org, base_url=branding_base_url)
    return answer
