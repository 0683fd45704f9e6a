"""The version registry: each instance version is an allow-listed image reference with notes.

A version's ``name`` is what its instances report in heartbeats (the control plane starts them
with ``ORGPLANE_INSTANCE_VERSION`` set to it), so "which version an org runs" is the registered
version whose image its instance runs, and a rollout's health gate reads it back from the
instance's own heartbeat. Images run before they were registered are counted by image.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.db.fleet_models import InstanceVersion, Rollout
from control_plane.db.models import Instance, Org
from control_plane.orgs.hierarchy import live_orgs
from control_plane.orgs.images import checked_image, parse_image
from control_plane.settings import ProvisioningSettings
from orgplane_wire.problems import BadRequest, Conflict, NotFound

NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")


def version_not_found() -> NotFound:
    return NotFound("No such instance version.", code="version_not_found", field="version")


async def version_name(db: AsyncSession, image: str) -> str:
    """The name of the registered version of ``image``, or "" when it is not registered."""
    if not image:
        return ""
    found = await db.exec(select(InstanceVersion.name).where(col(InstanceVersion.image) == image))
    return found.first() or ""


async def find_version(db: AsyncSession, ref: str) -> InstanceVersion:
    """The version whose id or name is ``ref``; 404 ``version_not_found`` otherwise."""
    if "\x00" in ref:
        raise version_not_found()
    query = select(InstanceVersion).where(
        (col(InstanceVersion.id) == ref) | (col(InstanceVersion.name) == ref)
    )
    found = (await db.exec(query)).first()
    if found is None:
        raise version_not_found()
    return found


async def new_version(
    db: AsyncSession,
    settings: ProvisioningSettings,
    *,
    name: str,
    image: str,
    notes: str,
    schema_version: int,
    created_by: str,
) -> InstanceVersion:
    """A checked, unsaved version: 400 ``invalid_version_name``, the image checks of
    :func:`checked_image`, 409 ``version_exists`` when its name or image is registered."""
    if not NAME.match(name):
        raise BadRequest(
            "A version name is 1-64 letters, digits, '.', '_', '+' or '-', starting with a "
            "letter or digit.",
            code="invalid_version_name",
            field="name",
        )
    checked_image(image, settings)
    ref = parse_image(image)
    assert ref is not None  # checked_image parsed it
    clash = await db.exec(
        select(InstanceVersion.name).where(
            (col(InstanceVersion.name) == name) | (col(InstanceVersion.image) == image)
        )
    )
    if clash.first() is not None:
        raise Conflict(
            "A version with that name or image is already registered.", code="version_exists"
        )
    return InstanceVersion(
        name=name,
        image=image,
        repository=ref.repository,
        tag=ref.tag,
        digest=ref.digest,
        notes=notes,
        schema_version=schema_version,
        created_by=created_by,
    )


async def check_unused(db: AsyncSession, version: InstanceVersion) -> None:
    """409 ``version_in_use`` when an org runs ``version`` or a rollout names it."""
    running = await db.exec(
        select(func.count())
        .select_from(Instance)
        .join(Org, col(Org.id) == col(Instance.org_id))
        .where(live_orgs(), col(Instance.image) == version.image)
    )
    rollouts = await db.exec(
        select(func.count())
        .select_from(Rollout)
        .where(
            (col(Rollout.to_version_id) == version.id)
            | (col(Rollout.from_version_id) == version.id)
        )
    )
    if running.one() or rollouts.one():
        raise Conflict(
            "Orgs run this version or a rollout names it; it stays registered.",
            code="version_in_use",
        )


@dataclass(frozen=True)
class FleetCount:
    """How many live orgs run one image, and the version it is registered as ("" if none)."""

    image: str
    version: str
    orgs: int


async def fleet_counts(db: AsyncSession) -> list[FleetCount]:
    """Live orgs per image they run (orgs never deployed are counted under image "")."""
    query = (
        select(Instance.image, func.count())
        .join(Org, col(Org.id) == col(Instance.org_id))
        .where(live_orgs())
        .group_by(col(Instance.image))
    )
    counts = {image: int(n) for image, n in (await db.exec(query)).all()}
    names = dict((await db.exec(select(InstanceVersion.image, InstanceVersion.name))).all())
    for image in names:
        counts.setdefault(image, 0)
    return sorted(
        (
            FleetCount(image=image, version=names.get(image, ""), orgs=n)
            for image, n in counts.items()
        ),
        key=lambda c: (-c.orgs, c.image),
    )
