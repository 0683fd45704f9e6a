"""Find identity-provider implementations by name in the ``orgplane.identity_providers``
entry-point group.

orgplane declares its own (``oidc``) in ``pyproject.toml``; a third party adds one by declaring
an entry point to an :class:`~control_plane.sso.base.IdentityProvider` subclass in its
distribution. The built-in ``oidc`` is also known without the entry point, so a checkout whose
installed metadata predates the group still signs in. Loading is lazy.
"""

from __future__ import annotations

import functools
import importlib
from importlib.metadata import entry_points
from typing import Final

from control_plane.sso.base import IdentityProvider, ProviderConfig
from orgplane_wire.problems import BadRequest

ENTRY_POINT_GROUP: Final = "orgplane.identity_providers"
BUILT_IN: Final = {"oidc": "control_plane.sso.oidc:OidcProvider"}


@functools.cache
def _installed() -> dict[str, str]:
    found = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    return {**BUILT_IN, **found}


def provider_kinds() -> list[str]:
    """The names of every installed implementation, sorted."""
    return sorted(_installed())


def check_kind(kind: str) -> None:
    """400 ``unknown_provider_kind`` unless an implementation is installed as ``kind``."""
    if kind not in _installed():
        raise BadRequest(
            f"Unknown identity-provider kind {kind!r}; installed: {', '.join(provider_kinds())}.",
            code="unknown_provider_kind",
            field="kind",
        )


def load_provider_class(kind: str) -> type[IdentityProvider]:
    """The implementation registered as ``kind`` (400 ``unknown_provider_kind`` when none;
    TypeError when the entry point is not an IdentityProvider)."""
    check_kind(kind)
    module_name, _, attr = _installed()[kind].partition(":")
    module = importlib.import_module(module_name)
    loaded = getattr(module, attr)
    if not (isinstance(loaded, type) and issubclass(loaded, IdentityProvider)):
        raise TypeError(f"entry point {kind!r} is not an IdentityProvider subclass")
    return loaded


def create_provider(kind: str, config: ProviderConfig) -> IdentityProvider:
    """An instance of the implementation ``kind`` for ``config``."""
    return load_provider_class(kind)(config)
