"""Logo validation by content: hostile SVGs are refused, rasters are decoded and re-encoded."""

from __future__ import annotations

import pytest

from control_plane.branding.logo import MAX_LOGO_BYTES, MAX_SIDE, validated_logo
from orgplane_wire.problems import ProblemError
from tests.support.images import image_bytes

SVG = '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
GOOD_SVG = (
    SVG + 'viewBox="0 0 10 10"><!-- a comment --><defs><linearGradient id="g">'
    '<stop offset="0" stop-color="#fff"/></linearGradient></defs>'
    '<rect width="10" height="10" fill="url(#g)"/><text x="1" y="9">Acme</text></svg>'
).encode()

HOSTILE = {
    "script": SVG + "><script>alert(1)</script></svg>",
    "script in another namespace": SVG + '><h:script xmlns:h="http://www.w3.org/1999/xhtml">'
    "alert(1)</h:script></svg>",
    "onload": SVG + 'onload="alert(1)"><rect width="1" height="1"/></svg>',
    "onclick on a shape": SVG + '><rect width="1" height="1" onclick="alert(1)"/></svg>',
    "xlink:href javascript": SVG + '><a xlink:href="javascript:alert(1)"><rect width="1" '
    'height="1"/></a></svg>',
    "href on a shape": SVG + '><rect href="javascript:alert(1)" width="1" height="1"/></svg>',
    "external use": SVG + '><use href="https://evil.example/x.svg#a"/></svg>',
    "external use via xlink": SVG + '><use xlink:href="https://evil.example/x.svg#a"/></svg>',
    "image": SVG + '><image href="https://evil.example/track.png"/></svg>',
    "foreignObject": SVG + '><foreignObject><div xmlns="http://www.w3.org/1999/xhtml">'
    "<iframe src='javascript:alert(1)'/></div></foreignObject></svg>",
    "style element": SVG + "><style>@import url(https://evil.example/x.css);</style></svg>",
    "style attribute": SVG + '><rect style="fill:url(https://evil.example/x)"/></svg>',
    "external url in fill": SVG + '><rect fill="url(https://evil.example/x#g)"/></svg>',
    "javascript in a value": SVG + '><rect fill="javascript:alert(1)"/></svg>',
    "animation setting href": SVG + '><set attributeName="href" to="javascript:alert(1)"/></svg>',
    "xxe": '<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    + SVG
    + "><text>&x;</text></svg>",
    "billion laughs": '<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "aaaa">'
    '<!ENTITY b "&a;&a;&a;&a;">]>' + SVG + "><text>&b;</text></svg>",
}
STYLESHEET_PI = (
    '<?xml version="1.0"?><?xml-stylesheet href="https://evil.example/x.xsl" type="text/xsl"?>'
    + SVG
    + "/>"
)


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_svgs_are_refused(name: str) -> None:
    with pytest.raises(ProblemError) as refused:
        validated_logo(HOSTILE[name].encode())
    assert refused.value.status == 400
    assert refused.value.code == "logo_svg_unsafe", refused.value.detail


def test_a_plain_svg_is_accepted_reserialised_without_comments() -> None:
    logo = validated_logo(GOOD_SVG)
    assert logo.content_type == "image/svg+xml"
    assert b"comment" not in logo.data
    assert b'fill="url(#g)"' in logo.data
    assert logo.data.startswith(b"<svg")
    # Processing instructions (a stylesheet to fetch) are not kept either.
    assert b"evil" not in validated_logo(STYLESHEET_PI.encode()).data


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "invalid_logo"),
        (b"GIF89a" + b"\0" * 20, "invalid_logo"),
        (b"<html><script>alert(1)</script></html>", "invalid_logo"),
        (b"\x89PNG\r\n\x1a\n" + b"not really a png" * 4, "invalid_logo"),
        (b"RIFF\0\0\0\0WEBPgarbage", "invalid_logo"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'><rect></svg>", "invalid_logo"),
        (b"<?xml version='1.0'?><html xmlns='http://www.w3.org/1999/xhtml'/>", "invalid_logo"),
    ],
)
def test_what_is_not_a_png_webp_or_svg_is_refused(data: bytes, code: str) -> None:
    with pytest.raises(ProblemError) as refused:
        validated_logo(data)
    assert (refused.value.status, refused.value.code) == (400, code)


def test_a_png_with_a_payload_after_it_is_re_encoded_without_it() -> None:
    polyglot = image_bytes((4, 4)) + b"<html><script>alert(1)</script></html>"
    logo = validated_logo(polyglot)
    assert logo.content_type == "image/png"
    assert b"script" not in logo.data
    assert (logo.width, logo.height) == (4, 4)


def test_size_and_dimensions_are_bounded() -> None:
    with pytest.raises(ProblemError) as big:
        validated_logo(b"\x89PNG\r\n\x1a\n" + b"\0" * MAX_LOGO_BYTES)
    assert (big.value.status, big.value.code) == (413, "logo_too_large")
    # A small file that would decode to 81 million pixels is refused from its header.
    bomb = image_bytes((9_000, 9_000), mode="1")
    assert len(bomb) < MAX_LOGO_BYTES
    with pytest.raises(ProblemError) as wide:
        validated_logo(bomb)
    assert (wide.value.status, wide.value.code) == (400, "logo_dimensions_too_large")
    assert validated_logo(image_bytes((MAX_SIDE, 1))).width == MAX_SIDE
