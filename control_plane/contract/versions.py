"""Contract versions: which ones this control plane speaks, and the negotiation.

An instance names the version it speaks in each heartbeat (``contract_version``, absent = 1).
The control plane answers with the version it will speak with that instance: the same one when
it supports it, else ``409 contract_version_unsupported`` with the ``supported`` list (and
records nothing). An image on the allow-list declares the versions it speaks
(:mod:`control_plane.orgs.images`); an image that speaks none of
:data:`SUPPORTED_CONTRACT_VERSIONS` is never set nor deployed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

import msgspec

from orgplane_wire.contract import CONTRACT_VERSION
from orgplane_wire.inbound import json_depth_exceeds
from orgplane_wire.problems import Conflict

#: The contract versions this control plane speaks.
SUPPORTED_CONTRACT_VERSIONS: Final = frozenset({CONTRACT_VERSION})
#: The version of an instance, or an image, that does not say which one it speaks.
IMPLIED_CONTRACT_VERSION: Final = 1


class _Versioned(msgspec.Struct):
    """The one field of a heartbeat read before the body is validated."""

    contract_version: object = None


def supported_list() -> list[int]:
    """:data:`SUPPORTED_CONTRACT_VERSIONS`, sorted (as problem answers carry it)."""
    return sorted(SUPPORTED_CONTRACT_VERSIONS)


def unsupported(
    detail: str, *, code: str = "contract_version_unsupported", **extra: Any
) -> Conflict:
    """A 409 problem naming the versions this control plane supports."""
    return Conflict(detail, code=code, supported=supported_list(), **extra)


def negotiate(version: int | None) -> int:
    """The version to speak with an instance that speaks ``version``; 409 when unsupported."""
    speaks = IMPLIED_CONTRACT_VERSION if version is None else version
    if speaks not in SUPPORTED_CONTRACT_VERSIONS:
        raise unsupported(
            f"This control plane speaks contract versions {supported_list()}, "
            f"not {speaks}: upgrade the control plane or run an image that speaks one of them."
        )
    return speaks


def check_raw_heartbeat(raw: bytes) -> None:
    """409 when a heartbeat body names a contract version this control plane does not speak.

    Read before the body is validated: a newer instance's body may carry fields this version
    does not know, and must be told the version is the problem, not the body. A body that is
    not JSON, nested too deep for msgspec (which raises ``RecursionError``), or whose version
    is not a positive integer, is left to validation (400)."""
    if json_depth_exceeds(raw):
        return
    try:
        version = msgspec.json.decode(raw, type=_Versioned).contract_version
    except (msgspec.DecodeError, msgspec.ValidationError):
        return
    if isinstance(version, int) and not isinstance(version, bool) and version >= 1:
        negotiate(version)


def speaks_supported(versions: Iterable[int]) -> bool:
    """Whether any of ``versions`` is one this control plane speaks."""
    return not SUPPORTED_CONTRACT_VERSIONS.isdisjoint(versions)
