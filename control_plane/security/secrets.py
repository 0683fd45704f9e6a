"""Opaque secrets the control plane hands out (hashed and encrypted by
:mod:`orgplane_wire.secret_box`, which the org instance uses too)."""

from __future__ import annotations

import secrets


def new_secret(prefix: str, nbytes: int = 32) -> str:
    """A random URL-safe secret with a recognisable prefix (``opr_``, ``opi_``...)."""
    return f"{prefix}_{secrets.token_urlsafe(nbytes)}"
