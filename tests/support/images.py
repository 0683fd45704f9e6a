"""Real images for upload tests (logos), made with Pillow."""

from __future__ import annotations

import io


def image_bytes(
    size: tuple[int, int] = (8, 8),
    color: tuple[int, int, int] = (200, 30, 30),
    *,
    fmt: str = "PNG",
    mode: str = "RGB",
) -> bytes:
    """An image of one colour, encoded as ``fmt``."""
    from PIL import Image

    out = io.BytesIO()
    Image.new(mode, size, color if mode == "RGB" else 0).save(out, format=fmt)
    return out.getvalue()
