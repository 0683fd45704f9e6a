"""Names and labels every backend gives the objects it makes, as pure functions.

Names are deterministic, DNS-safe and unique per org: ``orgplane-<slug>-<hash>`` where the slug
is cleaned and shortened for people and the hash (of the org id) keeps two orgs apart even when
their slugs clean to the same text or a slug is reused (kubespawner's ``slugs.py`` does the same).
Backends find objects by their labels, never by name alone, so an org whose slug changed is still
found; an object is *ours* only when its managed-by label is this deployment's id.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Final

from provisioners.errors import PermanentProvisionerError

ORG_ID_LABEL: Final = "orgplane.org-id"
MANAGED_BY_LABEL: Final = "orgplane.managed-by"
INSTANCE_ID_LABEL: Final = "orgplane.instance-id"
#: Fingerprint of the spec an object was made from: equal means nothing to update.
SPEC_HASH_LABEL: Final = "orgplane.spec-hash"

_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: A Kubernetes label value (Docker accepts any string; the strictest rule wins).
_LABEL_VALUE = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?")
_NOT_DNS = re.compile(r"[^a-z0-9-]+")
_DNS_ID = re.compile(r"[a-z0-9]{1,40}")
_SLUG_MAX: Final = 30


def check_org_id(org_id: str) -> str:
    """``org_id`` if it is safe in names, paths and labels (1-64 of ``[A-Za-z0-9_-]``)."""
    if not _ID.fullmatch(org_id):
        raise PermanentProvisionerError(f"not a valid org id: {org_id[:80]!r}")
    return org_id


def check_label_value(value: str, *, what: str) -> str:
    """``value`` if Kubernetes and Docker accept it as a label value."""
    if not value or len(value) > 63 or not _LABEL_VALUE.fullmatch(value):
        raise PermanentProvisionerError(
            f"{what} must be 1-63 letters, digits, '-', '_' or '.', starting and ending with a "
            f"letter or digit: {value[:80]!r}"
        )
    return value


def org_hash(org_id: str) -> str:
    """Eight hex digits derived from the org id."""
    return hashlib.sha256(org_id.encode()).hexdigest()[:8]


def safe_slug(slug: str) -> str:
    """``slug`` reduced to at most 30 lower-case DNS characters, never empty."""
    cleaned = _NOT_DNS.sub("-", slug.lower()).strip("-")[:_SLUG_MAX].strip("-")
    return cleaned or "org"


def instance_name(*, slug: str, org_id: str) -> str:
    """The name of an org's container, Deployment, Service...: at most 48 characters."""
    return f"orgplane-{safe_slug(slug)}-{org_hash(check_org_id(org_id))}"


def stable_name(prefix: str, org_id: str) -> str:
    """``<prefix>-<org id>``, DNS-safe, from the id alone: the name of what must survive a slug
    change (the data volume, a per-org namespace)."""
    if _DNS_ID.fullmatch(check_org_id(org_id)):
        return f"{prefix}-{org_id}"
    return f"{prefix}-{safe_slug(org_id)[:20].strip('-')}-{org_hash(org_id)}"


def data_volume_name(org_id: str) -> str:
    """The default name of an org's data volume."""
    return stable_name("orgplane-data", org_id)


def ownership_labels(*, org_id: str, deployment_id: str) -> dict[str, str]:
    """Labels that make an object the org's and this deployment's."""
    return {ORG_ID_LABEL: check_org_id(org_id), MANAGED_BY_LABEL: deployment_id}


def label_selector(labels: Mapping[str, str]) -> str:
    """A Kubernetes equality label selector, also usable as Docker label filters joined."""
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


def is_ours(labels: Mapping[str, str] | None, *, deployment_id: str, org_id: str = "") -> bool:
    """Whether labels mark an object as this deployment's (and ``org_id``'s, if given)."""
    labels = labels or {}
    if labels.get(MANAGED_BY_LABEL) != deployment_id or not labels.get(ORG_ID_LABEL):
        return False
    return not org_id or labels.get(ORG_ID_LABEL) == org_id
