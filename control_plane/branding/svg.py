"""SVG logos, accepted only when every element and attribute is on a strict allow-list.

An SVG is a document that can run script. Rather than strip what looks dangerous (a deny-list
that the next trick gets past), a logo is **refused** (400 ``logo_svg_unsafe``, naming the
element or attribute) unless it is built only from shapes, text, gradients and clip paths with
presentation attributes. So: no ``<script>``, ``<style>``, ``<foreignObject>``, ``<use>``,
``<image>``, ``<a>``, animation; no ``on*`` handler, no ``href``/``xlink:href``, no ``style``
attribute; a ``url(...)`` only as ``url(#id)`` (a gradient or clip path in the same file).

Parsing uses defusedxml with DTDs forbidden: entity expansion (billion laughs) and external
entities (XXE) are refused before anything is read. Comments and processing instructions are
dropped, and what is stored is the tree serialised again, not the bytes sent.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Final

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from orgplane_wire.problems import BadRequest

SVG_NS: Final = "http://www.w3.org/2000/svg"
#: At most this many elements in one logo.
MAX_ELEMENTS: Final = 2000

ELEMENTS: Final = frozenset({
    "svg", "g", "path", "rect", "circle", "ellipse", "line", "polyline", "polygon", "text",
    "tspan", "defs", "linearGradient", "radialGradient", "stop", "clipPath", "title", "desc",
})  # fmt: skip
ATTRIBUTES: Final = frozenset({
    "id", "viewBox", "width", "height", "x", "y", "x1", "y1", "x2", "y2", "cx", "cy", "r",
    "rx", "ry", "fx", "fy", "d", "points", "transform", "version", "preserveAspectRatio",
    "fill", "fill-opacity", "fill-rule", "stroke", "stroke-width", "stroke-linecap",
    "stroke-linejoin", "stroke-opacity", "stroke-miterlimit", "stroke-dasharray", "opacity",
    "offset", "stop-color", "stop-opacity", "gradientUnits", "gradientTransform",
    "spreadMethod", "clip-path", "clip-rule", "clipPathUnits", "font-family", "font-size",
    "font-weight", "font-style", "text-anchor", "dominant-baseline", "letter-spacing",
})  # fmt: skip
_URL = re.compile(r"url\(", re.IGNORECASE)
_LOCAL_URL = re.compile(r"url\(#[A-Za-z_][\w.-]*\)")


def _unsafe(what: str) -> BadRequest:
    return BadRequest(
        f"The SVG logo contains {what}, which logos may not: only shapes, text, gradients and "
        "clip paths with presentation attributes are accepted (docs/branding.md).",
        code="logo_svg_unsafe",
        field="logo",
    )


def _local_name(tag: str) -> str | None:
    """The element's name in the SVG namespace; None for any other namespace."""
    prefix = "{" + SVG_NS + "}"
    return tag[len(prefix) :] if tag.startswith(prefix) else None


def _check_value(name: str, value: str) -> None:
    for match in _URL.finditer(value):
        if not _LOCAL_URL.match(value, match.start()):
            raise _unsafe(f"a reference outside the file in {name!r}")
    if "javascript:" in value.replace(" ", "").lower():
        raise _unsafe(f"a javascript: value in {name!r}")


def sanitised_svg(data: bytes) -> bytes:
    """``data`` parsed, checked against the allow-list and serialised again; 400
    ``invalid_logo`` when it is not well-formed SVG, ``logo_svg_unsafe`` when it holds
    anything the allow-list lacks (a DTD or entity included)."""
    try:
        root = fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException:
        raise _unsafe("a DTD or an entity declaration") from None
    except (ET.ParseError, ValueError):
        raise BadRequest("The logo is not well-formed SVG.", code="invalid_logo",
                         field="logo") from None  # fmt: skip
    if _local_name(root.tag) != "svg":
        raise BadRequest("An SVG logo's root element must be <svg>.", code="invalid_logo",
                         field="logo")  # fmt: skip
    for count, element in enumerate(root.iter()):
        if count >= MAX_ELEMENTS:
            raise BadRequest(f"An SVG logo has at most {MAX_ELEMENTS} elements.",
                             code="logo_too_complex", field="logo")  # fmt: skip
        if not isinstance(element.tag, str):  # a comment or processing instruction
            raise _unsafe("a comment or processing instruction")
        name = _local_name(element.tag)
        if name not in ELEMENTS:
            raise _unsafe(f"the element <{name or element.tag}>")
        for attribute, value in element.attrib.items():
            if attribute not in ATTRIBUTES:
                raise _unsafe(f"the attribute {attribute!r} on <{name}>")
            _check_value(attribute, value)
    ET.register_namespace("", SVG_NS)
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=False))
