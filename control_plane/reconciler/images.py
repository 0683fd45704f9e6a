"""Which images the platform runs: an allow-list, never the tenant's choice.

An org's instance runs inside the platform's network with the org's credentials, so the image
is code the platform runs. Only platform admins choose it (``redeploy``), and only from
``ORGPLANE_ALLOWED_IMAGES``: each entry is a repository (``ghcr.io/acme/orgplane-instance``,
any tag or digest of it) or a repository pinned to a digest (``repo@sha256:<64 hex>``, that
digest only). The repository of ``ORGPLANE_INSTANCE_IMAGE`` is always allowed. References are
compared as written (``orgplane-instance`` and ``docker.io/library/orgplane-instance`` are two
entries), so an allow-list names images the way the platform's own settings do.

:func:`checked_image` is the API's check (400 ``invalid_image`` / 403 ``image_not_allowed``);
:func:`runnable_image` is the reconciler's, for a row written before the check existed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from control_plane.errors import BadRequest, Forbidden
from control_plane.settings import ProvisioningSettings

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


def image_allowed(reference: str, settings: ProvisioningSettings) -> bool:
    """Whether the allow-list (plus the default image's repository) admits ``reference``."""
    image = parse_image(reference)
    if image is None:
        return False
    default = parse_image(settings.instance_image)
    entries = [*settings.allowed_images, *([default.repository] if default else [])]
    for entry in entries:
        allowed = parse_image(entry.strip())
        if allowed is None or allowed.repository != image.repository:
            continue
        if not allowed.digest or allowed.digest == image.digest:
            return True
    return False


def checked_image(reference: str, settings: ProvisioningSettings) -> str:
    """``reference`` if the platform may run it; 400 ``invalid_image`` or 403
    ``image_not_allowed`` otherwise."""
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
    return reference


def runnable_image(stored: str, settings: ProvisioningSettings) -> str:
    """The image to run for an instance row holding ``stored``: itself when allowed, else the
    default image (a row written before the allow-list, or after the list shrank)."""
    if stored and image_allowed(stored, settings):
        return stored
    return settings.instance_image
