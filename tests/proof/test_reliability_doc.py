"""docs/reliability.md states the sizes and the default seed the proof suites really use."""

from __future__ import annotations

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


def test_the_default_seed_is_the_documented_one() -> None:
    assert f"default `{DEFAULT_SEED}`" in DOC
