"""The org's branding as this instance holds it: handed over in heartbeat answers
(``contract.HeartbeatAnswer.branding``), answered by ``/api/v1/me``.

An answer's branding is checked before it is adopted: a control plane that sends something
else (a newer or a broken one) leaves the branding in force as it was.
"""

from __future__ import annotations

import re
from typing import Any, Final

from orgplane_wire.contract import Branding

_COLOR: Final = re.compile(r"#[0-9a-f]{6}")
_LIMITS: Final = {"display_name": 200, "contact_email": 320, "logo_url": 2000}


def default_branding(slug: str) -> Branding:
    """What the instance shows before the control plane sends branding: the org's slug."""
    return Branding(display_name=slug, primary_color=None, text_color=None, contact_email=None,
                    logo_url=None)  # fmt: skip


def _text(raw: dict[str, Any], name: str) -> str | None:
    value = raw.get(name)
    if value is None and name != "display_name":
        return None
    if not isinstance(value, str) or not value or len(value) > _LIMITS[name]:
        raise ValueError(name)
    return value


def _color(raw: dict[str, Any], name: str) -> str | None:
    value = raw.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not _COLOR.fullmatch(value):
        raise ValueError(name)
    return value


def checked_branding(raw: Any) -> Branding | None:
    """``raw`` as :class:`Branding` when every field has the contract's shape, else None.
    Logo URLs must be http(s)."""
    if not isinstance(raw, dict):
        return None
    try:
        branding = Branding(
            display_name=_text(raw, "display_name") or "",
            primary_color=_color(raw, "primary_color"),
            text_color=_color(raw, "text_color"),
            contact_email=_text(raw, "contact_email"),
            logo_url=_text(raw, "logo_url"),
        )
    except ValueError:
        return None
    logo = branding["logo_url"]
    if logo is not None and not logo.startswith(("https://", "http://")):
        return None
    return branding
