"""WCAG contrast maths on known pairs, and the text colour derived from a primary colour."""

from __future__ import annotations

import pytest

from control_plane.branding.colour import (
    NEAR_BLACK,
    WHITE,
    checked_color,
    contrast_ratio,
    relative_luminance,
    text_color,
)
from orgplane_wire.problems import BadRequest


@pytest.mark.parametrize(
    ("a", "b", "ratio"),
    [
        ("#000000", "#ffffff", 21.0),  # the maximum
        ("#ffffff", "#ffffff", 1.0),  # the minimum
        ("#777777", "#ffffff", 4.48),  # the well-known "just fails AA" grey
        ("#767676", "#ffffff", 4.54),  # ... and the one that passes
        ("#0000ff", "#ffffff", 8.59),
        ("#ff0000", "#ffffff", 4.0),
        ("#ffff00", "#000000", 19.56),
    ],
)
def test_contrast_ratio_matches_known_wcag_values(a: str, b: str, ratio: float) -> None:
    assert contrast_ratio(a, b) == pytest.approx(ratio, abs=0.01)
    assert contrast_ratio(b, a) == pytest.approx(ratio, abs=0.01)


def test_relative_luminance_ends_and_the_linearisation_threshold() -> None:
    assert relative_luminance("#000000") == 0
    assert relative_luminance("#ffffff") == pytest.approx(1)
    # 10/255 = 0.0392 is below 0.04045: the linear segment, c / 12.92.
    assert relative_luminance("#0a0a0a") == pytest.approx((10 / 255) / 12.92)


@pytest.mark.parametrize(
    ("background", "text"),
    [
        ("#000000", WHITE),
        ("#ffffff", NEAR_BLACK),
        ("#003366", WHITE),  # dark navy
        ("#ffcc00", NEAR_BLACK),  # yellow
        ("#ff0000", NEAR_BLACK),  # red: 4.0 with white, 4.8 with #111111
        ("#0000ff", WHITE),
        ("#767676", WHITE),
    ],
)
def test_text_colour_is_the_one_with_the_higher_contrast(background: str, text: str) -> None:
    assert text_color(background) == text
    other = WHITE if text == NEAR_BLACK else NEAR_BLACK
    assert contrast_ratio(background, text) >= contrast_ratio(background, other)


@pytest.mark.parametrize("bad", ["red", "#fff", "#12345", "#1234567", "123456", "#gggggg", ""])
def test_only_rrggbb_is_a_colour(bad: str) -> None:
    with pytest.raises(BadRequest) as refused:
        checked_color(bad)
    assert refused.value.code == "invalid_color"


def test_colours_are_kept_in_lower_case() -> None:
    assert checked_color("#AbCdEf") == "#abcdef"
