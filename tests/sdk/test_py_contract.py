"""The SDK's copy of contract v1 (``orgplane_sdk.contract``) is orgplane's
(``orgplane_wire/contract.py``): every name an instance reads, every constant and rule it
follows, and the heartbeat and token shapes. The SDK cannot import orgplane (an import-linter
contract), so this test is what keeps the two from drifting.
"""

from __future__ import annotations

from typing import Any, NotRequired, get_origin, get_type_hints

import orgplane_sdk.contract as sdk
import pytest

import orgplane_wire.contract as ours


def env_names(cls: type) -> dict[str, str]:
    return {k: v for k, v in vars(cls).items() if k.isupper()}


def shape(typed: Any) -> tuple[frozenset[str], frozenset[str]]:
    """(required keys, optional keys); from the hints, as ``__required_keys__`` is wrong for
    ``NotRequired`` under postponed annotations on Python 3.11."""
    hints = get_type_hints(typed, include_extras=True)
    optional = {
        k for k, hint in hints.items() if not typed.__total__ or get_origin(hint) is NotRequired
    }
    return frozenset(hints) - optional, frozenset(optional)


def test_every_environment_variable_is_the_same() -> None:
    assert env_names(sdk.Env) == env_names(ours.Env)


@pytest.mark.parametrize(
    "name",
    [
        "CONTRACT_VERSION",
        "HEARTBEAT_PATH",
        "DEFAULT_PORT",
        "DEFAULT_HEARTBEAT_INTERVAL",
        "HEARTBEAT_JITTER",
        "MAX_HEARTBEAT_BACKOFF_SECONDS",
        "TOKEN_TYP",
        "ALLOWED_ALGORITHMS",
        "ROLE_SCOPES",
        "REVOCATION_FALLBACK_SECONDS",
    ],
)
def test_constants_are_the_same(name: str) -> None:
    assert getattr(sdk, name) == getattr(ours, name)


def test_the_probe_paths_are_the_instances() -> None:
    from org_instance.auth import PROBE_PATHS

    assert sdk.PROBE_PATHS == PROBE_PATHS


@pytest.mark.parametrize("org_id", ["0" * 32, "acme_1", "a-b"])
def test_audience_namespace_and_revocation_names_are_spelled_the_same(org_id: str) -> None:
    assert sdk.org_audience(org_id) == ours.org_audience(org_id)
    assert sdk.redis_namespace(org_id) == ours.redis_namespace(org_id)
    assert sdk.revocations_key(org_id) == ours.revocations_key(org_id)
    assert sdk.revocations_channel(org_id) == ours.revocations_channel(org_id)


@pytest.mark.parametrize("interval", [0.05, 1.0, 7.5, 10.0, 60.0, 3600.0])
def test_the_backoff_cap_is_the_same(interval: float) -> None:
    assert sdk.heartbeat_backoff_cap(interval) == ours.heartbeat_backoff_cap(interval)


@pytest.mark.parametrize(
    "name", ["Limits", "Actor", "OrgTokenClaims", "UsageCounters", "HeartbeatBody"]
)
def test_typed_dicts_have_the_same_keys(name: str) -> None:
    assert shape(getattr(sdk, name)) == shape(getattr(ours, name))


def test_the_heartbeat_answer_has_the_same_keys() -> None:
    assert shape(sdk.HeartbeatAnswer) == shape(ours.HeartbeatAnswer)
