"""Dependency-injection markers of the instance's route modules.

Handlers read ``caller: Caller, instance: Instance``; both are provided app-wide in
:mod:`org_instance.app`.
"""

from __future__ import annotations

from typing import TypeAlias

from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.types import Scope

from org_instance.auth import Member
from org_instance.runtime import InstanceRuntime
from orgplane_wire.problems import Unauthorized

Caller: TypeAlias = NamedDependency[Member]
Instance: TypeAlias = NamedDependency[InstanceRuntime]


async def provide_instance(state: State) -> InstanceRuntime:
    """Dependency: this process's instance runtime."""
    runtime: InstanceRuntime = state.instance
    return runtime


async def provide_caller(scope: Scope) -> Member:
    """Dependency: the member authenticated by :class:`org_instance.auth.TokenAuth`."""
    member = scope.get("user")
    if not isinstance(member, Member):
        raise Unauthorized("Send a Bearer org token for this org.")
    return member
