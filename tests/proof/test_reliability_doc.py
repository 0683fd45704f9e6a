"""docs/reliability.md states the sizes and the default seed the proof suites really use."""

from __future__ import annotations

from tests.proof.attacks import planned_requests
from tests.proof.conftest import DEFAULT_SEED, SCALES
from tests.support.services import REPO

DOC = (REPO / "docs" / "reliability.md").read_text()


def row(label: str) -> list[str]:
    line = next(x for x in DOC.splitlines() if x.startswith(f"| {label}"))
    return [cell.strip() for cell in line.strip("|").split("|")[1:]]


def test_the_size_table_matches_the_scales() -> None:
    ci, full = SCALES["ci"], SCALES["full"]
    assert row("schemathesis examples") == [str(ci.fuzz_examples), str(full.fuzz_examples)]
    assert row("cross-org requests") == [
        f"{s.cross_org_requests:,} ({s.cross_org_seconds:,.0f} s)" for s in (ci, full)
    ]
    assert row("control plane down") == [
        f"{s.outage_seconds:.0f} s ({s.outage_token_ttl} s)" for s in (ci, full)
    ]
    assert row("concurrent wrong-password logins") == [f"{s.login_attempts:,}" for s in (ci, full)]
    assert row("tenant-boundary attack rounds") == [str(ci.attack_rounds), str(full.attack_rounds)]


def test_the_attack_class_table_matches_the_plans() -> None:
    """Each class's row: the requests its plan sends at both sizes with the default seed, none
    got through (the suite fails otherwise), and the seed."""
    ci, full = SCALES["ci"], SCALES["full"]
    at_ci = planned_requests(DEFAULT_SEED, ci.attack_rounds)
    at_full = planned_requests(DEFAULT_SEED, full.attack_rounds)
    for name in at_ci:
        assert row(name) == [f"{at_ci[name]:,}", f"{at_full[name]:,}", "0", f"`{DEFAULT_SEED}`"]


def test_the_default_seed_is_the_documented_one() -> None:
    assert f"default `{DEFAULT_SEED}`" in DOC
