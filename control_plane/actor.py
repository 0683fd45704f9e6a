"""Who acts, and from where: the caller and their real client IP, resolved once per request.

Route handlers receive it as ``actor: ActorDep`` and hand it to services, which record it in
the audit log; the UI builds the same object from its signed-in viewer (:meth:`Actor.of`), so
the API and the pages run the same service code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

from litestar import Request
from litestar.di import NamedDependency
from litestar.params import SkipValidation

from control_plane.auth import Principal
from control_plane.client_ip import client_ip
from control_plane.db.models import User
from control_plane.deps import Caller


@dataclass(frozen=True, slots=True)
class Actor:
    """The authenticated caller (``principal``) and the client IP their request came from."""

    principal: Principal
    ip: str

    @property
    def user(self) -> User:
        return self.principal.user

    @classmethod
    def of(cls, request: Request[Any, Any, Any], principal: Principal) -> Actor:
        return cls(principal=principal, ip=client_ip(request))


async def provide_actor(request: Request[Any, Any, Any], principal: Caller) -> Actor:
    """Dependency: the request's :class:`Actor` (401 without credentials, as ``principal``)."""
    return Actor.of(request, principal)


#: Built by :func:`provide_actor` from values already checked, so not validated again.
ActorDep: TypeAlias = NamedDependency[SkipValidation[Actor]]
