"""Org slugs: the DNS label an org is reached at (``{slug}.{base_domain}``).

Rules, each refused with 400 and a detail naming it (code ``invalid_slug``, or
``slug_reserved`` for names the platform keeps for itself):

1. 3 to 40 characters;
2. only ASCII letters, digits and hyphens (stored lower-case, unique case-insensitively);
3. no hyphen at the start or the end;
4. no ``--`` in the third and fourth positions (reserved for IDNA, as in ``xn--``);
5. not 32 hexadecimal characters (that is the shape of an org id, and paths accept either);
6. not a reserved name: a built-in one, one of ``ORGPLANE_RESERVED_SLUGS``, or a label of one
   of the platform's own hostnames (the control plane's public, fallback, wake and instance
   URLs): an org at ``wake.example.com`` could otherwise pass for the platform's wake host.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import urlsplit

from control_plane.settings import Settings
from orgplane_wire.problems import BadRequest

MIN_LENGTH: Final = 3
MAX_LENGTH: Final = 40

RESERVED: Final = frozenset(
    {
        "admin", "api", "app", "assets", "auth", "billing", "cdn", "control", "dashboard",
        "dns", "docs", "ftp", "help", "imap", "internal", "jwks", "localhost", "login",
        "logout", "mail", "metrics", "oauth", "org", "orgplane", "orgs", "pop", "root",
        "signup", "smtp", "sso", "static", "status", "support", "system", "traefik",
        "webmail", "www",
    }
)  # fmt: skip

_CHARS = re.compile(r"[A-Za-z0-9-]+")
_ID_SHAPE = re.compile(r"[0-9a-f]{32}")
_IP_SHAPE = re.compile(r"[0-9.]+|.*:.*")


def _invalid(rule: str) -> BadRequest:
    return BadRequest(f"Invalid slug: {rule}.", code="invalid_slug", field="slug", rule=rule)


def platform_labels(settings: Settings) -> frozenset[str]:
    """Slugs the settings reserve: ``reserved_slugs`` and every label of the platform's own
    hostnames (IP addresses have no labels to take)."""
    labels = {slug.strip().lower() for slug in settings.routing.reserved_slugs}
    urls = (
        settings.server.base_url,
        settings.routing.routing_fallback_url,
        settings.routing.wake_url,
        settings.provisioning.instance_control_plane_url,
    )
    for url in urls:
        host = (urlsplit(url).hostname or "") if url else ""
        if host and not _IP_SHAPE.fullmatch(host):
            labels.update(label for label in host.lower().split(".") if label)
    return frozenset(labels)


def checked_slug(raw: str, *, reserved: frozenset[str] = frozenset()) -> str:
    """``raw`` as a stored slug (lower case), or 400 naming the rule it breaks; ``reserved``:
    more names the platform keeps (:func:`platform_labels`)."""
    if not MIN_LENGTH <= len(raw) <= MAX_LENGTH:
        raise _invalid(f"it must be {MIN_LENGTH} to {MAX_LENGTH} characters long")
    # Checked before lower-casing: str.lower() maps some non-ASCII letters (the Kelvin sign)
    # to ASCII ones, which would let a look-alike through.
    if not _CHARS.fullmatch(raw):
        raise _invalid("it may contain only letters a-z, digits and hyphens")
    slug = raw.lower()
    if slug.startswith("-") or slug.endswith("-"):
        raise _invalid("it must not start or end with a hyphen")
    if slug[2:4] == "--":
        raise _invalid("'--' in the third and fourth positions is reserved for IDNA names")
    if _ID_SHAPE.fullmatch(slug):
        raise _invalid("it must not look like an org id (32 hexadecimal characters)")
    if slug in RESERVED or slug in reserved:
        raise BadRequest(
            f"The slug {slug!r} is reserved by the platform.", code="slug_reserved", field="slug"
        )
    return slug
