"""Primary colours and the text colour that reads on them (WCAG 2.x contrast ratio).

``relative_luminance`` and ``contrast_ratio`` follow WCAG 2.2's definitions (sRGB channels
linearised with the 0.04045 threshold, luminance weights 0.2126/0.7152/0.0722, ratio
``(L1 + 0.05) / (L2 + 0.05)``). The text colour is white or near-black, whichever contrasts more.
"""

from __future__ import annotations

import re
from typing import Final

from orgplane_wire.problems import BadRequest

WHITE: Final = "#ffffff"
#: Near-black rather than pure black: softer on a light colour, still above 4.5:1 on white.
NEAR_BLACK: Final = "#111111"
_HEX: Final = re.compile(r"#[0-9a-fA-F]{6}")


def checked_color(value: str, *, field: str = "primary_color") -> str:
    """``value`` in lower case if it is ``#rrggbb``, else 400 ``invalid_color``."""
    if not _HEX.fullmatch(value):
        raise BadRequest(
            "A colour is written #rrggbb (six hexadecimal digits).",
            code="invalid_color",
            field=field,
        )
    return value.lower()


def _channel(byte: int) -> float:
    c = byte / 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def relative_luminance(color: str) -> float:
    """WCAG relative luminance of ``#rrggbb``: 0 for black, 1 for white."""
    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * _channel(r) + 0.7152 * _channel(g) + 0.0722 * _channel(b)


def contrast_ratio(a: str, b: str) -> float:
    """WCAG contrast ratio of two ``#rrggbb`` colours, from 1 (same) to 21 (black on white)."""
    la, lb = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def text_color(background: str) -> str:
    """:data:`WHITE` or :data:`NEAR_BLACK`, whichever contrasts more with ``background``
    (white on a tie)."""
    if contrast_ratio(background, NEAR_BLACK) > contrast_ratio(background, WHITE):
        return NEAR_BLACK
    return WHITE
