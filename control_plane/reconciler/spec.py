"""Building an org's :class:`InstanceSpec` from the database and settings.

The spec must come out the same on every pass for an unchanged org (``apply`` compares
fingerprints), so the secrets it carries are stored encrypted on the ``Instance`` row and
decrypted here rather than minted anew.
"""

from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane import __version__
from control_plane.db.models import Instance, Org
from control_plane.features.plans import PLAN_RESOURCES
from control_plane.fleet.registry import version_name
from control_plane.orgs.hierarchy import effective_limits
from control_plane.orgs.images import org_image
from control_plane.reconciler.faults import broken_version
from control_plane.routing.domains import routed_hostnames
from control_plane.routing.hostnames import subdomain_of
from control_plane.runtime import Runtime
from provisioners.base import InstanceSpec, ProvisionerOptions, instance_env


def provisioner_options(runtime: Runtime) -> ProvisionerOptions:
    """The backends' options from this runtime's settings."""
    settings = runtime.settings
    values: dict[str, Any] = {
        **settings.provisioning.model_dump(),
        **settings.backends.model_dump(),
        **settings.routing.model_dump(),
    }
    return ProvisionerOptions.from_mapping(values, data_root=settings.server.data_dir)


def control_plane_url_for_instances(runtime: Runtime) -> str:
    """Where instances send heartbeats and fetch the JWKS."""
    return runtime.settings.provisioning.instance_control_plane_url or runtime.issuer


async def build_spec(
    runtime: Runtime, db: AsyncSession, *, org: Org, instance: Instance
) -> InstanceSpec:
    """The spec of ``org``'s instance; needs the credential already on ``instance``."""
    settings = runtime.settings
    box = runtime.box
    credential = box.decrypt(instance.credential_enc).decode()
    redis_url = box.decrypt(instance.redis_url_enc).decode() if instance.redis_url_enc else ""
    subdomain = subdomain_of(org.slug, settings.provisioning.base_domain)
    hostnames = tuple(sorted(set(await routed_hostnames(db, org=org, subdomain=subdomain))))
    limits = await effective_limits(db, org)
    image = await org_image(db, org=org, instance=instance, settings=settings.provisioning)
    version = await version_name(db, image)
    if broken_version(version):
        credential = "fault-hook-broken-version"
    env = instance_env(
        org_id=org.id,
        slug=org.slug,
        instance_id=instance.instance_id,
        control_plane_url=control_plane_url_for_instances(runtime),
        issuer=runtime.issuer,
        credential=credential,
        redis_url=redis_url,
        hostnames=hostnames,
        heartbeat_interval=settings.provisioning.heartbeat_interval,
        limits=limits,
        version=version or __version__,
    )
    return InstanceSpec(
        org_id=org.id,
        slug=org.slug,
        instance_id=instance.instance_id,
        image=image,
        env=env,
        resources=PLAN_RESOURCES.get(org.plan, PLAN_RESOURCES["free"]),
        hostnames=hostnames,
        generation=org.generation,
    )
