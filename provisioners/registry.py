"""Find provisioner backends by name in the ``orgplane.provisioners`` entry-point group.

Built-in backends (``local``, ``docker``, ``kubernetes``) are declared in orgplane's own
``pyproject.toml``; a third party adds one by declaring an entry point in its distribution (see
``docs/writing-a-provisioner.md``). Loading is lazy: a backend's module (and its SDK) is imported
only when that backend is chosen.
"""

from __future__ import annotations

import functools
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Final

from provisioners.base import Provisioner, ProvisionerOptions
from provisioners.errors import PermanentProvisionerError, UnknownProvisionerError

ENTRY_POINT_GROUP: Final = "orgplane.provisioners"


def installed_provisioners() -> dict[str, EntryPoint]:
    """Every installed backend by name (as installed when the process first asked)."""
    return dict(_installed())


@functools.cache
def _installed() -> tuple[tuple[str, EntryPoint], ...]:
    # entry_points() reads the metadata of every installed distribution: ~20 ms of CPU, at
    # each control-plane start (a process of the tests starts hundreds) without the cache.
    return tuple((ep.name, ep) for ep in entry_points(group=ENTRY_POINT_GROUP))


def load_provisioner_class(name: str) -> type[Provisioner]:
    """The backend class registered as ``name``.

    Raises :class:`UnknownProvisionerError` naming the installed backends when there is none of
    that name, and :class:`PermanentProvisionerError` when the entry point is not a Provisioner.
    """
    installed = installed_provisioners()
    if name not in installed:
        names = ", ".join(sorted(installed)) or "none"
        raise UnknownProvisionerError(
            f"unknown provisioner {name!r}; installed provisioners: {names}"
        )
    loaded = installed[name].load()
    if not (isinstance(loaded, type) and issubclass(loaded, Provisioner)):
        raise PermanentProvisionerError(
            f"entry point {name!r} ({installed[name].value}) is not a Provisioner subclass"
        )
    return loaded


def create_provisioner(name: str, *, options: ProvisionerOptions, **kwargs: Any) -> Provisioner:
    """An instance of the backend ``name`` built from ``options`` (and backend-specific
    ``kwargs``, such as an injected SDK client in tests)."""
    return load_provisioner_class(name)(options=options, **kwargs)
