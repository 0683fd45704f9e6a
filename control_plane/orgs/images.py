"""Which images the platform runs: an allow-list, never the tenant's choice.

An org's instance runs inside the platform's network with the org's credentials, so the image
is code the platform runs. Only platform admins choose it (``redeploy``), and only from
``ORGPLANE_ALLOWED_IMAGES``: each entry is a repository (``ghcr.io/acme/orgplane-instance``,
any tag or digest of it) or a repository pinned to a digest (``repo@sha256:<64 hex>``, that
digest only). The repository of ``ORGPLANE_INSTANCE_IMAGE`` is always allowed. References are
compared as written (``orgplane-instance`` and ``docker.io/library/orgplane-instance`` are two
entries), so an allow-list names images the way the platform's own settings do.

Each entry may declare the org-instance contract versions its images speak, after a ``;``:
``ghcr.io/acme/app;contract=1,2``. An entry without one speaks version 1 (the version before
negotiation existed), and so does the default image unless an entry for its repository says
otherwise. When a digest entry and a repository entry both match, the digest entry's
declaration counts. An image that speaks none of the versions this control plane supports
(:data:`~control_plane.contract.versions.SUPPORTED_CONTRACT_VERSIONS`) is allowed by the list
but never set nor deployed.

Which image an org runs: its own (``Instance.pinned_image``, set by a platform admin's
``redeploy``), else the one a rollout moved it to (``Instance.assigned_image``, see
``control_plane.fleet``), else its plan's (``PlanImage``), else ``ORGPLANE_INSTANCE_IMAGE``;
each only if the allow-list still admits it (:func:`chosen_image`).

:func:`checked_image` is the API's check (400 ``invalid_image`` / 403 ``image_not_allowed`` /
409 ``image_contract_unsupported``); :func:`runnable_image` and :func:`chosen_image` are the
reconciler's, for rows written before a check existed or after the list shrank, and
:func:`contract_refusal` says why the reconciler must not deploy an image.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.contract.declarations import declared_versions, split_entry
from control_plane.contract.versions import (
    IMPLIED_CONTRACT_VERSION,
    speaks_supported,
    supported_list,
    unsupported,
)
from control_plane.db.models import Instance, Org, PlanImage
from control_plane.settings import ProvisioningSettings
from orgplane_wire.problems import BadRequest, Forbidden

#: Docker's reference grammar, slightly stricter: lower-case path, optional tag, sha256 digest.
_REFERENCE: Final = re.compile(
    r"^(?P<repository>"
    r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    r"(?::[0-9]{1,5})?/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)


@dataclass(frozen=True)
class ImageRef:
    """An image reference split into repository, tag and digest."""

    repository: str
    tag: str
    digest: str


def parse_image(reference: str) -> ImageRef | None:
    """The parts of ``reference``, or None when it is not a valid image reference."""
    match = _REFERENCE.match(reference)
    if match is None or len(reference) > 300:
        return None
    return ImageRef(match["repository"], match["tag"] or "", match["digest"] or "")


def parse_entry(entry: str) -> tuple[ImageRef, frozenset[int]] | None:
    """An allow-list entry's image and the contract versions it declares; None when invalid."""
    reference, declared = split_entry(entry)
    image = parse_image(reference)
    if image is None:
        return None
    if not declared:
        return image, frozenset({IMPLIED_CONTRACT_VERSION})
    versions = declared_versions(declared)
    return None if versions is None else (image, versions)


def image_contracts(reference: str, settings: ProvisioningSettings) -> frozenset[int] | None:
    """The contract versions ``reference`` speaks, or None when the allow-list (plus the
    default image's repository) does not admit it."""
    image = parse_image(reference)
    if image is None:
        return None
    found: dict[bool, frozenset[int]] = {}  # by "matched on the digest"
    for entry in settings.allowed_images:
        parsed = parse_entry(entry)
        if parsed is None or parsed[0].repository != image.repository:
            continue
        allowed, versions = parsed
        if not allowed.digest or allowed.digest == image.digest:
            found.setdefault(bool(allowed.digest), versions)
    if found:
        return found.get(True, found.get(False))
    default = parse_image(settings.instance_image)
    if default is not None and default.repository == image.repository:
        return frozenset({IMPLIED_CONTRACT_VERSION})
    return None


def image_allowed(reference: str, settings: ProvisioningSettings) -> bool:
    """Whether the allow-list (plus the default image's repository) admits ``reference``."""
    return image_contracts(reference, settings) is not None


def contract_refusal(reference: str, settings: ProvisioningSettings) -> str:
    """Why ``reference`` must not be deployed (it speaks no contract version this control
    plane supports), or "" when it may be."""
    versions = image_contracts(reference, settings)
    if versions is None or speaks_supported(versions):
        return ""
    return (
        f"image {reference} speaks contract version(s) {sorted(versions)}; this control plane "
        f"supports {supported_list()}"
    )


def checked_image(reference: str, settings: ProvisioningSettings) -> str:
    """``reference`` if the platform may run it; 400 ``invalid_image``, 403
    ``image_not_allowed`` or 409 ``image_contract_unsupported`` otherwise."""
    if parse_image(reference) is None:
        raise BadRequest(
            "That is not an image reference (repository[:tag][@sha256:digest]).",
            code="invalid_image",
            field="image",
        )
    if not image_allowed(reference, settings):
        raise Forbidden(
            "That image is not on the platform's allow-list (ORGPLANE_ALLOWED_IMAGES).",
            code="image_not_allowed",
            field="image",
        )
    refusal = contract_refusal(reference, settings)
    if refusal:
        raise unsupported(
            f"The {refusal}: choose an image that speaks a supported version (its allow-list "
            "entry declares them: `repository;contract=N`).",
            code="image_contract_unsupported",
            field="image",
            contract_versions=sorted(image_contracts(reference, settings) or ()),
        )
    return reference


def chosen_image(
    pinned: str, plan_image: str, settings: ProvisioningSettings, *, assigned: str = ""
) -> str:
    """The image an org runs: its own, else the one a rollout assigned, else its plan's, else
    the default; an image the allow-list no longer admits is skipped."""
    for candidate in (pinned, assigned, plan_image):
        if candidate and image_allowed(candidate, settings):
            return candidate
    return settings.instance_image


async def org_image(
    db: AsyncSession, *, org: Org, instance: Instance, settings: ProvisioningSettings
) -> str:
    """The image ``org``'s instance runs (:func:`chosen_image` with its plan's image)."""
    plan = await db.get(PlanImage, org.plan)
    return chosen_image(
        instance.pinned_image,
        plan.image if plan else "",
        settings,
        assigned=instance.assigned_image,
    )


def runnable_image(stored: str, settings: ProvisioningSettings) -> str:
    """The image to run for an instance row holding ``stored``: itself when allowed, else the
    default image (a row written before the allow-list, or after the list shrank)."""
    return chosen_image(stored, "", settings)
