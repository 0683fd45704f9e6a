"""Dependency-injection markers shared by every route module.

Litestar injects by parameter name; these aliases mark the parameters explicitly, so a
handler reads ``db: DB, principal: Caller, runtime: RuntimeDep``.
"""

from __future__ import annotations

from typing import TypeAlias

from litestar.di import NamedDependency
from sqlmodel.ext.asyncio.session import AsyncSession

from control_plane.auth import Principal
from control_plane.runtime import RuntimeDep

DB: TypeAlias = NamedDependency[AsyncSession]
Caller: TypeAlias = NamedDependency[Principal]

__all__ = ["DB", "Caller", "RuntimeDep"]
