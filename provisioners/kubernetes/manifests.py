"""The ordered set of objects that make one org's instance, each stamped with its digest.

Order matters on creation: the Namespace first, then what the Deployment needs (Secret, volume,
quota, policy), then the Deployment, the Service and the route. Removal walks it backwards.
"""

from __future__ import annotations

from provisioners.base import InstanceSpec
from provisioners.base import ProvisionerOptions as Options
from provisioners.kubernetes import objects
from provisioners.kubernetes.isolation import network_policy, resource_quota
from provisioners.kubernetes.objects import Obj, with_hash


def desired_objects(spec: InstanceSpec, *, options: Options, replicas: int = 1) -> list[Obj]:
    """Every object of the org's instance, in creation order, with ``orgplane.spec-hash``."""
    built: list[Obj] = []
    per_org = options.kubernetes_namespace_mode == "per-org"
    if per_org:
        built.append(objects.namespace(spec, options=options))
    built += [
        objects.secret(spec, options=options),
        objects.persistent_volume_claim(spec, options=options),
    ]
    if per_org:
        built += [resource_quota(spec, options=options), network_policy(spec, options=options)]
    built += [
        objects.deployment(spec, options=options, replicas=replicas),
        objects.service(spec, options=options),
    ]
    route = objects.route(spec, options=options)
    if route is not None:
        built.append(route)
    return [with_hash(obj) for obj in built]
