"""The Host syntax and JSON depth checks both services run before any handler.

Seen failing before they existed: the same inputs on the wire gave 500s
(``tests/conformance/test_bad_input.py``); a 5,000-digit port made ``int()`` raise.
"""

from __future__ import annotations

import pytest

from orgplane_wire.inbound import MAX_JSON_DEPTH, host_is_valid, json_depth_exceeds


@pytest.mark.parametrize(
    "host", ["", "x", "a.b", "a.b:80", "a.b:", "127.0.0.1:65535", "[::1]", "[::1]:443", "h:000080"]
)
def test_valid_hosts(host: str) -> None:
    assert host_is_valid(host)


@pytest.mark.parametrize(
    "host",
    ["h:abc", "h:65536", "h:99999", "h:-1", "[::1", "a b", "a@b", "a/b", "h:" + "9" * 5000, "é"],
)
def test_invalid_hosts(host: str) -> None:
    assert not host_is_valid(host)


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def test_depth_limit_is_inclusive() -> None:
    assert not json_depth_exceeds(nested(MAX_JSON_DEPTH))
    assert json_depth_exceeds(nested(MAX_JSON_DEPTH + 1))
    assert json_depth_exceeds(b'{"a":' * (MAX_JSON_DEPTH + 1))  # unterminated too


def test_brackets_inside_strings_do_not_count() -> None:
    inside = b'["' + b"[" * 1000 + b'", "\\"[[[[", "' + b"{" * 1000 + b'"]'
    assert not json_depth_exceeds(inside)


def test_siblings_do_not_add_up() -> None:
    assert not json_depth_exceeds(b"[" + b"[1]," * 10_000 + b"[1]]")
