"""Proof suites: size, seed, and the two-tenant platform they share.

``ORGPLANE_PROOF_SCALE=full`` runs every suite at its full size (hours of CPU are not needed,
but minutes are); the default ``ci`` size fits CI. ``ORGPLANE_PROOF_SEED`` fixes the seed; each
suite prints the seed it used in its failure report so a run can be repeated exactly.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.proof.world import two_tenants
from tests.routing.conftest import dns_zone  # noqa: F401  (test_attack_classes.py's DNS)

DEFAULT_SEED = 20261123


@dataclass(frozen=True)
class Scale:
    """How big each suite runs."""

    name: str
    #: Examples schemathesis generates per API operation and identity.
    fuzz_examples: int
    #: Requests of the cross-org generator, and the wall-clock cap on sending them.
    cross_org_requests: int
    cross_org_seconds: float
    #: How long the control plane stays down, and the org-token lifetime during that run.
    outage_seconds: float
    outage_token_ttl: int
    #: Wrong-password attempts sent at once against one account, across two replicas.
    login_attempts: int
    #: Rounds of each tenant-boundary attack class (``attacks.py``).
    attack_rounds: int


SCALES = {
    "ci": Scale("ci", 4, 5_000, 300.0, 30.0, 5, login_attempts=100, attack_rounds=24),
    "full": Scale("full", 60, 100_000, 3_600.0, 300.0, 60, login_attempts=1_000, attack_rounds=500),
}


def proof_scale() -> Scale:
    """The scale named by ``ORGPLANE_PROOF_SCALE`` (``ci`` unless told)."""
    name = os.environ.get("ORGPLANE_PROOF_SCALE", "ci").lower()
    if name not in SCALES:
        raise pytest.UsageError(f"ORGPLANE_PROOF_SCALE must be one of {sorted(SCALES)}")
    return SCALES[name]


def proof_seed() -> int:
    """The seed of this session (``ORGPLANE_PROOF_SEED``, else a fixed default)."""
    return int(os.environ.get("ORGPLANE_PROOF_SEED", DEFAULT_SEED))


def pytest_report_header() -> str:
    return f"orgplane proof: scale={proof_scale().name} seed={proof_seed()}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed and "tests/proof" in str(item.path):
        report.sections.append(
            (
                "proof seed",
                f"ORGPLANE_PROOF_SEED={proof_seed()} ORGPLANE_PROOF_SCALE={proof_scale().name}",
            )
        )
    return report


@pytest.fixture(scope="session")
def scale() -> Scale:
    return proof_scale()


@pytest.fixture(scope="session")
def seed() -> int:
    return proof_seed()


@pytest.fixture(scope="session")
def tenants(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The shared platform: ``cp``, tenants ``A`` and ``B`` (see ``world.py``)."""
    with two_tenants(tmp_path_factory.mktemp("proof")) as (cp, a, b):
        world: dict[str, Any] = {"cp": cp, "A": a, "B": b}
        yield world
