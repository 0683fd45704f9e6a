"""The instance adopts branding from a heartbeat answer only in the contract's shape."""

from __future__ import annotations

from typing import Any

import pytest

from org_instance.branding import checked_branding, default_branding

GOOD: dict[str, Any] = {
    "display_name": "Corp Inc.",
    "primary_color": "#003366",
    "text_color": "#ffffff",
    "contact_email": "help@corp.example",
    "logo_url": "https://cp.example/api/v1/branding/logos/" + "a" * 64,
}


def test_the_contract_shape_is_adopted_and_nulls_are_allowed() -> None:
    assert checked_branding(GOOD) == GOOD
    bare = {**default_branding("corp"), "display_name": "Corp"}
    assert checked_branding(bare) == bare


@pytest.mark.parametrize(
    "bad",
    [
        None,
        [],
        {**GOOD, "display_name": ""},
        {**GOOD, "display_name": None},
        {**GOOD, "display_name": "x" * 201},
        {**GOOD, "primary_color": "red"},
        {**GOOD, "text_color": "#FFFFFF"},
        {**GOOD, "logo_url": "javascript:alert(1)"},
        {**GOOD, "logo_url": "data:image/svg+xml,<svg onload=alert(1)>"},
        {**GOOD, "contact_email": 5},
    ],
)
def test_anything_else_is_ignored(bad: Any) -> None:
    assert checked_branding(bad) is None
