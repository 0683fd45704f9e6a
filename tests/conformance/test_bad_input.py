"""Bad input from a raw socket never reaches a 5xx on either service, and never hangs.

Each case was seen failing before the fix, against the same two processes:

* a Host of ``127.0.0.1:abc`` or ``127.0.0.1:99999``: 500 text/plain, two tracebacks in the log
  (the error handler itself failed building ``request.url``);
* invalid UTF-8 in a JSON body: 500 ``internal_error`` (``UnicodeDecodeError``) on every JSON
  route, the unauthenticated login included;
* ``[`` nested 100,000 deep: 500 (``RecursionError`` in msgspec);
* a WebSocket handshake with a 10 kB ``access_token``: no answer; the socket stayed open until
  the client gave up (read timed out after 3 s, then 10 s);
* a request that is not HTTP (a control character in the request line or a header, a target
  outside ASCII, no request line): uvicorn's own 400 in text/plain, not a problem document.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.conformance.conftest import Platform
from tests.conformance.rawhttp import ANSWER_WITHIN, Answer, exchange, handshake, request

Target = Callable[[Platform], tuple[int, str, dict[str, str]]]


def cp_login(p: Platform) -> tuple[int, str, dict[str, str]]:
    return p.cp.port, "/api/v1/auth/login", {}


def cp_create_org(p: Platform) -> tuple[int, str, dict[str, str]]:
    return p.cp.port, "/api/v1/orgs", {"Authorization": f"Bearer {p.access_token}"}


def instance_sessions(p: Platform) -> tuple[int, str, dict[str, str]]:
    return p.instance.port, "/api/v1/sessions", {"Authorization": f"Bearer {p.org_token}"}


JSON_TARGETS = [cp_login, cp_create_org, instance_sessions]


def host_of(p: Platform, port: int) -> str:
    return p.instance_host if port == p.instance.port else "127.0.0.1"


def assert_problem(answer: Answer, status: int, code: str) -> None:
    assert not answer.hung, "no answer: the connection was held open"
    assert answer.status == status, str(answer)
    assert answer.media_type == "application/problem+json", str(answer)
    problem = answer.json()
    assert problem["code"] == code, problem
    assert problem["status"] == status, problem
    assert {"type", "title", "detail"} <= problem.keys(), problem


@pytest.mark.parametrize(
    "bad", ["127.0.0.1:abc", "127.0.0.1:99999", "[::1", "a b", "h:-1", "h:" + "9" * 5000]
)
@pytest.mark.parametrize("service", ["cp", "instance"])
@pytest.mark.parametrize("path", ["/api/v1/me", "/healthz", "/no/such/route"])
def test_invalid_host_is_400_invalid_host(
    platform: Platform, service: str, bad: str, path: str
) -> None:
    port = platform.cp.port if service == "cp" else platform.instance.port
    answer = exchange(port, request("GET", path, host=bad))
    assert_problem(answer, 400, "invalid_host")


@pytest.mark.parametrize("service", ["cp", "instance"])
def test_two_host_headers_are_400(platform: Platform, service: str) -> None:
    port = platform.cp.port if service == "cp" else platform.instance.port
    raw = request("GET", "/api/v1/me", host="127.0.0.1", headers={"Host": "other.test"})
    assert_problem(exchange(port, raw), 400, "invalid_host")


@pytest.mark.parametrize(
    "body",
    [
        b'{"email": "\xff\xfe", "password": "x", "name": "\xc3\x28", "title": "\xed\xa0\x80"}',
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":' * 40 + b"1" + b"}" * 40,
    ],
    ids=["invalid-utf8", "deep-100000", "deep-40"],
)
@pytest.mark.parametrize("target", JSON_TARGETS, ids=lambda t: t.__name__)
def test_undecodable_json_is_400_malformed_body(
    platform: Platform, target: Target, body: bytes
) -> None:
    port, path, headers = target(platform)
    headers = {**headers, "Content-Type": "application/json"}
    answer = exchange(
        port, request("POST", path, host=host_of(platform, port), headers=headers, body=body)
    )
    assert_problem(answer, 400, "malformed_body")


def test_brackets_inside_strings_are_not_nesting(platform: Platform) -> None:
    """Thousands of ``[`` inside a string: decoded, then refused as bad credentials (401)."""
    body = b'{"email": "' + b"[" * 5000 + b'@x.test", "password": "x"}'
    answer = exchange(
        platform.cp.port,
        request(
            "POST", "/api/v1/auth/login", headers={"Content-Type": "application/json"}, body=body
        ),
    )
    assert answer.status in (400, 401), str(answer)
    assert answer.json()["code"] != "malformed_body", str(answer)


def test_json_within_the_depth_bound_is_decoded(platform: Platform) -> None:
    """32 levels decode (the login then refuses the shape, not the JSON)."""
    body = b'{"email":' + b"[" * 31 + b"]" * 31 + b', "password": "x"}'
    answer = exchange(
        platform.cp.port,
        request(
            "POST", "/api/v1/auth/login", headers={"Content-Type": "application/json"}, body=body
        ),
    )
    assert_problem(answer, 400, "validation_error")


@pytest.mark.parametrize("size", [9_000, 10_000, 70_000])
@pytest.mark.parametrize("service", ["cp", "instance"])
def test_oversized_websocket_handshake_is_answered_within_a_second(
    platform: Platform, service: str, size: int
) -> None:
    port = platform.cp.port if service == "cp" else platform.instance.port
    answer = exchange(
        port,
        handshake(f"/api/v1/events?access_token={'a' * size}", host=host_of(platform, port)),
    )
    assert_problem(answer, 414, "uri_too_long")
    assert answer.seconds < ANSWER_WITHIN, str(answer)


@pytest.mark.parametrize(("method", "path"), [("POST", "/ui/login"), ("OPTIONS", "/")])
def test_multipart_field_that_is_not_utf8_is_400(
    platform: Platform, method: str, path: str
) -> None:
    """Found by the raw fuzz: Litestar's CSRF middleware parses the form and raised
    ``UnicodeDecodeError`` (500 ``internal_error`` and a traceback) on ``\\xff`` in a field."""
    body = b'--x\r\nContent-Disposition: form-data; name="a"\r\n\r\n\xff\r\n--x--\r\n'
    headers = {"Content-Type": "multipart/form-data; boundary=x"}
    answer = exchange(platform.cp.port, request(method, path, headers=headers, body=body))
    assert_problem(answer, 400, "malformed_body")


NOT_HTTP = {
    "control character in the target": b"GET /a\x01b HTTP/1.1\r\nHost: {host}\r\n\r\n",
    "target outside ASCII": b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: {host}\r\n\r\n",
    "control character in a header": b"GET / HTTP/1.1\r\nHost: {host}\r\nX-A: a\x7fb\r\n\r\n",
    "no request line": b"NOT HTTP AT ALL\r\n\r\n",
}


@pytest.mark.parametrize("raw", NOT_HTTP.values(), ids=NOT_HTTP.keys())
@pytest.mark.parametrize("service", ["cp", "instance"])
def test_a_request_that_is_not_http_is_400_bad_request(
    platform: Platform, service: str, raw: bytes
) -> None:
    port = platform.cp.port if service == "cp" else platform.instance.port
    data = raw.replace(b"{host}", host_of(platform, port).encode())
    assert_problem(exchange(port, data), 400, "bad_request")
