"""Which ``ORGPLANE_*`` variables the control plane reads, for checking the deploy files."""

from __future__ import annotations

from control_plane.settings import GROUP_CLASSES


def setting_names() -> set[str]:
    """Every variable control_plane/settings.py reads."""
    return {f"ORGPLANE_{name.upper()}" for cls in GROUP_CLASSES for name in cls.model_fields}


def unknown(names: set[str]) -> set[str]:
    """The ``ORGPLANE_*`` names in ``names`` that are not settings."""
    return {n for n in names if n.startswith("ORGPLANE_")} - setting_names()
