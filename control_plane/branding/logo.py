"""Logo uploads, validated by what they are, not by what they claim to be.

Accepted: PNG and WebP (magic bytes, then a full decode by Pillow, then re-encoded so no
trailing bytes or metadata chunks survive) and SVG (:mod:`control_plane.branding.svg`). At most
:data:`MAX_LOGO_BYTES` and :data:`MAX_SIDE` pixels a side. The declared Content-Type of the
upload is ignored.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from typing import Final

from PIL import Image

from control_plane.branding.svg import sanitised_svg
from orgplane_wire.problems import BadRequest, ProblemError

MAX_LOGO_BYTES: Final = 256 * 1024
#: The largest width or height of a raster logo, in pixels.
MAX_SIDE: Final = 1024
PNG_MAGIC: Final = b"\x89PNG\r\n\x1a\n"
_FORMATS: Final = {"PNG": "image/png", "WEBP": "image/webp"}


@dataclass(frozen=True)
class Logo:
    """A validated logo, ready to store and serve."""

    content_type: str
    data: bytes
    width: int
    height: int

    @property
    def sha256(self) -> str:
        """The hex SHA-256 of :attr:`data` (names the logo in its public URL)."""
        return hashlib.sha256(self.data).hexdigest()


class LogoTooLarge(ProblemError):
    """413: the upload is over :data:`MAX_LOGO_BYTES`."""

    status, code, title = 413, "logo_too_large", "Logo too large"


def too_large_detail() -> str:
    """The detail of :class:`LogoTooLarge`."""
    return f"A logo is at most {MAX_LOGO_BYTES // 1024} KiB."


def _invalid(detail: str) -> BadRequest:
    return BadRequest(detail, code="invalid_logo", field="logo")


def _sniff(data: bytes) -> str | None:
    if data.startswith(PNG_MAGIC):
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith((b"<svg", b"<?xml")):
        return "SVG"
    return None


def _raster(data: bytes, fmt: str) -> Logo:
    try:
        with Image.open(io.BytesIO(data), formats=[fmt]) as image:
            width, height = image.size
            if width > MAX_SIDE or height > MAX_SIDE:
                raise BadRequest(
                    f"A logo is at most {MAX_SIDE}x{MAX_SIDE} pixels; this one is "
                    f"{width}x{height}.",
                    code="logo_dimensions_too_large",
                    field="logo",
                )
            image.load()
            out = io.BytesIO()
            image.save(out, format=fmt)
    except ProblemError:
        raise
    except Exception:  # Pillow raises many kinds for a broken file; all mean "not an image"
        raise _invalid(f"The logo is not a valid {fmt} image.") from None
    return Logo(content_type=_FORMATS[fmt], data=out.getvalue(), width=width, height=height)


def validated_logo(data: bytes) -> Logo:
    """The logo in ``data``, re-encoded or re-serialised. Refused: 413 ``logo_too_large`` over
    :data:`MAX_LOGO_BYTES`, 400 ``logo_dimensions_too_large`` over :data:`MAX_SIDE`, 400
    ``invalid_logo`` for anything not a PNG, WebP or SVG, 400 ``logo_svg_unsafe`` for an SVG
    off the allow-list. CPU-bound: call it off the event loop."""
    if len(data) > MAX_LOGO_BYTES:
        raise LogoTooLarge(too_large_detail(), field="logo")
    fmt = _sniff(data)
    if fmt is None:
        raise _invalid("A logo must be a PNG, WebP or SVG image.")
    if fmt == "SVG":
        return Logo(content_type="image/svg+xml", data=sanitised_svg(data), width=0, height=0)
    return _raster(data, fmt)
