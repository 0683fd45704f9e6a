"""The precedence of feature access rules, evaluated without a database."""

from __future__ import annotations

from typing import Any

import pytest

from control_plane.db.models import Feature
from control_plane.features.plans import PLANS
from control_plane.features.rules import (
    Decider,
    Subject,
    decide,
    enabled_features,
    feature_enabled,
)


def _subject(**kw: Any) -> Subject:
    base: dict[str, Any] = {
        "user_id": "u1",
        "org_ids": ["child", "parent"],
        "plan": PLANS["free"],
        "overrides": {},
    }
    return Subject(**{**base, **kw})


@pytest.mark.parametrize(
    ("rule", "subject", "expected", "decider"),
    [
        (
            Feature(key="k", disabled=True, exclusive_user_ids=["u1"]),
            _subject(),
            False,
            Decider.DISABLED,
        ),
        (
            Feature(key="k", exclusive_user_ids=["u1"], plans=["team"]),
            _subject(),
            True,
            Decider.EXCLUSIVE_USER,
        ),
        (
            Feature(key="k", exclusive_user_ids=["u2"], default=True),
            _subject(),
            False,
            Decider.EXCLUSIVE_OTHERS,
        ),
        (Feature(key="k", exclusive_org_ids=["parent"]), _subject(), True, Decider.EXCLUSIVE_ORG),
        (
            Feature(key="k", exclusive_org_ids=["x"]),
            _subject(overrides={"k": True}),
            False,
            Decider.EXCLUSIVE_OTHERS,
        ),
        (Feature(key="k", plans=["team"]), _subject(overrides={"k": True}), True, Decider.OVERRIDE),
        (Feature(key="k", plans=["team"], default=True), _subject(), False, Decider.ENTRY_PLANS),
        (Feature(key="k", plans=["free"]), _subject(), True, Decider.ENTRY_PLANS),
        (Feature(key="k", default=True), _subject(), True, Decider.DEFAULT),
        (Feature(key="k"), _subject(), False, Decider.DEFAULT),
        (None, _subject(), False, Decider.DEFAULT),
    ],
)
def test_the_first_rule_that_applies_decides(
    rule: Feature | None, subject: Subject, expected: bool, decider: Decider
) -> None:
    assert feature_enabled(rule, "k", subject) is expected
    assert decide(rule, "k", subject) == (expected, decider)


def test_a_built_in_plan_decides_a_feature_it_includes() -> None:
    assert decide(None, "chat", _subject()) == (True, Decider.PLAN)
    assert decide(None, "sso", _subject()) == (False, Decider.DEFAULT)


def test_without_a_catalogue_the_plan_and_overrides_decide() -> None:
    subject = _subject(overrides={"files": False, "sso": True})
    assert enabled_features({}, subject) == ["chat", "sso"]
    assert enabled_features({}, _subject(user_id=None)) == ["chat", "files"]
