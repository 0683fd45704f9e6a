"""Making a rollout: which orgs it moves (its target), in which waves, and which it skips.

Waves are cumulative: ``[1, "5%", "25%", "100%"]`` upgrades 1 org, then up to 5% of the
rollout's orgs, then 25%, then all; a wave that adds no org is dropped, and orgs beyond the
last wave form one more. Orgs are ordered by a hash of the rollout and org ids (a list keeps
its order), so the first waves are a spread of the fleet, not its oldest orgs.

An org is skipped, visibly (its row says why), when it is pinned (``Instance.pinned_image``, a
platform admin's redeploy with an image), was never deployed, already runs the target, or
runs something else than the rollout's ``from_version``.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from typing import Any, Final

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.db.fleet_models import InstanceVersion, Rollout, RolloutOrg
from control_plane.db.models import Instance, Org
from control_plane.features.plans import plan_named
from control_plane.orgs.access import find_live_org
from control_plane.orgs.events import add_event
from control_plane.orgs.hierarchy import descendant_ids, live_orgs
from orgplane_wire.problems import BadRequest

MAX_WAVES: Final = 20
_PERCENT: Final = re.compile(r"^([1-9][0-9]?|100)%$")


def bad_waves(detail: str) -> BadRequest:
    return BadRequest(detail, code="invalid_wave_spec", field="waves")


def wave_sizes(spec: list[Any], total: int) -> list[int]:
    """The number of orgs in each wave of ``spec`` over ``total`` orgs (see the module
    docstring); 400 ``invalid_wave_spec`` for an empty, too long or decreasing spec."""
    if not spec or len(spec) > MAX_WAVES:
        raise bad_waves(f'Give 1 to {MAX_WAVES} waves, such as [1, "5%", "25%", "100%"].')
    sizes: list[int] = []
    done, last_count, last_percent = 0, 0, 0
    for item in spec:
        if isinstance(item, int) and not isinstance(item, bool) and item >= 1:
            if item < last_count:
                raise bad_waves("Wave counts are cumulative: they must not decrease.")
            last_count, upto = item, item
        elif isinstance(item, str) and (match := _PERCENT.match(item)):
            percent = int(match[1])
            if percent < last_percent:
                raise bad_waves("Wave percentages are cumulative: they must not decrease.")
            last_percent, upto = percent, math.ceil(percent * total / 100)
        else:
            raise bad_waves(
                f'A wave is a count (1 or more) or a percentage ("1%".."100%"): {item!r}.'
            )
        upto = min(max(upto, done), total)
        if upto > done:
            sizes.append(upto - done)
            done = upto
    if done < total:
        sizes.append(total - done)
    return sizes


def _spread(rollout_id: str, org_id: str) -> str:
    return hashlib.sha256(f"{rollout_id}:{org_id}".encode()).hexdigest()


async def target_orgs(db: AsyncSession, target: dict[str, Any], rollout_id: str) -> list[Org]:
    """The live orgs ``target`` names, in rollout order; 400 ``invalid_target``,
    ``unknown_plan`` or ``unknown_org`` when it names nothing valid."""
    kind = target.get("kind")
    if kind == "orgs":
        refs = target.get("orgs") or []
        found: list[Org] = []
        for ref in refs:
            org = await find_live_org(db, str(ref))
            if org is None:
                raise BadRequest(f"No live org {ref!r}.", code="unknown_org", field="target.orgs")
            if org not in found:
                found.append(org)
        return found
    query = select(Org).where(live_orgs())
    if kind == "plan":
        plan_named(str(target.get("plan")))
        query = query.where(col(Org.plan) == target["plan"])
    elif kind == "subtree":
        parent = await find_live_org(db, str(target.get("parent")))
        if parent is None:
            raise BadRequest(
                "No live parent org by that id or slug.", code="unknown_org", field="target.parent"
            )
        ids = {parent.id, *await descendant_ids(db, [parent.id])}
        query = query.where(col(Org.id).in_(ids))
    elif kind not in ("all", "percent"):
        raise BadRequest("Unknown target kind.", code="invalid_target", field="target.kind")
    orgs = sorted((await db.exec(query)).all(), key=lambda o: _spread(rollout_id, o.id))
    if kind == "percent":
        return orgs[: math.ceil(int(target["percent"]) * len(orgs) / 100)]
    return orgs


def skip_reason(
    instance: Instance | None, *, to: InstanceVersion, source: InstanceVersion | None
) -> str:
    """Why the rollout leaves this org alone, or "" when it moves it."""
    if instance is None or not instance.image:
        return "not deployed yet"
    if instance.pinned_image:
        return f"pinned to {instance.pinned_image}"
    if instance.image == to.image:
        return f"already runs {to.name}"
    if source is not None and instance.image != source.image:
        return f"runs {instance.image}, not {source.name}"
    return ""


@dataclass(frozen=True)
class Planned:
    """The orgs of a new rollout: moved (in order) and skipped (with the reason)."""

    moved: list[tuple[Org, Instance]]
    skipped: list[tuple[Org, str]]


async def plan_orgs(
    db: AsyncSession,
    *,
    rollout_id: str,
    target: dict[str, Any],
    to: InstanceVersion,
    source: InstanceVersion | None,
) -> Planned:
    """Resolve ``target`` and sort its orgs into moved and skipped; 400 ``empty_target``
    when the target names no org or skips them all."""
    orgs = await target_orgs(db, target, rollout_id)
    moved: list[tuple[Org, Instance]] = []
    skipped: list[tuple[Org, str]] = []
    for org in orgs:
        instance = await db.get(Instance, org.id)
        reason = skip_reason(instance, to=to, source=source)
        if reason:
            skipped.append((org, reason))
        else:
            assert instance is not None
            moved.append((org, instance))
    if not moved:
        raise BadRequest(
            f"The target has no org to move ({len(orgs)} matched, {len(skipped)} skipped).",
            code="empty_target",
            field="target",
            skipped={org.slug: reason for org, reason in skipped[:20]},
        )
    return Planned(moved=moved, skipped=skipped)


def add_rows(db: AsyncSession, rollout: Rollout, planned: Planned, sizes: list[int]) -> None:
    """The rollout's per-org rows and a timeline event for each org."""
    waves = [n for n, size in enumerate(sizes) for _ in range(size)]
    for (org, instance), wave in zip(planned.moved, waves, strict=True):
        db.add(
            RolloutOrg(rollout_id=rollout.id, org_id=org.id, wave=wave, from_image=instance.image)
        )
        add_event(
            db,
            org_id=org.id,
            kind="rollout.queued",
            message=f"rollout {rollout.id}: wave {wave + 1} of {len(sizes)}",
        )
    for org, reason in planned.skipped:
        db.add(RolloutOrg(rollout_id=rollout.id, org_id=org.id, state="skipped", reason=reason))
        add_event(
            db, org_id=org.id, kind="rollout.skipped", message=f"rollout {rollout.id}: {reason}"
        )
