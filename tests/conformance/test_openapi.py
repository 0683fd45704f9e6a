"""Both services' OpenAPI documents, fetched over HTTP, are valid and tell the truth.

* openapi-spec-validator accepts both documents;
* every error response is ``application/problem+json`` with the ``Problem`` schema (the token
  endpoint's RFC 6749 errors excepted, and declared as such);
* the security schemes are declared, and an operation declares security exactly when it answers
  401 to a caller without credentials;
* real error answers (no credentials, bad credentials, undecodable bodies) have a declared
  status and validate against the declared schema (jsonschema).

Seen failing before: the control plane declared only a 400 in ``application/json`` with
Litestar's own shape (never sent), no security scheme at all; the instance published no document.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import jsonschema
import pytest
from openapi_spec_validator import validate

from tests.conformance.conftest import Platform

#: The OAuth endpoints answer errors as RFC 6749 §5.2 JSON (RFC 7009 and RFC 7662 say so too).
OAUTH_ERRORS = {
    "/oauth/token": (400, 401),
    "/oauth/revoke": (400,),
    "/oauth/introspect": (400, 401),
}

PROBLEM = "application/problem+json"
METHODS = ("get", "post", "put", "patch", "delete")


def cp_document(p: Platform) -> dict[str, Any]:
    answer = httpx.get(p.cp.url + "/api/schema/openapi.json", timeout=10)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def instance_document(p: Platform) -> dict[str, Any]:
    with p.instance.client() as client:  # no token: the document holds no org data
        answer = client.get("/api/schema/openapi.json")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def concrete(path: str, org_id: str) -> str:
    path = re.sub(r"\{org_(id|ref)\}", org_id, path)
    return re.sub(r"\{[^}]+\}", "x", path)


def check_answer(
    document: dict[str, Any], operation: dict[str, Any], answer: httpx.Response
) -> None:
    """``answer``'s status is declared for ``operation`` and its body fits the declared schema."""
    where = f"{answer.request.method} {answer.request.url.path} -> {answer.status_code}"
    declared = operation["responses"].get(str(answer.status_code))
    assert declared is not None, f"{where}: status not declared"
    media_type = answer.headers["content-type"].split(";")[0]
    assert media_type in declared["content"], f"{where}: {media_type} not declared"
    schema = {**declared["content"][media_type]["schema"], "components": document["components"]}
    jsonschema.validate(answer.json(), schema)


@pytest.mark.parametrize("which", ["cp", "instance"])
def test_document_is_valid_openapi(platform: Platform, which: str) -> None:
    document = cp_document(platform) if which == "cp" else instance_document(platform)
    validate(document)
    assert document["components"]["securitySchemes"]
    assert "Problem" in document["components"]["schemas"]


@pytest.mark.parametrize("which", ["cp", "instance"])
def test_every_error_response_is_a_problem(platform: Platform, which: str) -> None:
    document = cp_document(platform) if which == "cp" else instance_document(platform)
    wrong = []
    for method, path, operation in operations(document):
        for status, response in operation["responses"].items():
            if int(status) < 400:
                continue
            content = response.get("content", {})
            if int(status) in OAUTH_ERRORS.get(path, ()):  # RFC 6749 §5.2 errors
                ok = "application/json" in content
            else:
                ok = content.get(PROBLEM, {}).get("schema") == {
                    "$ref": "#/components/schemas/Problem"
                }
            if not ok:
                wrong.append(f"{method} {path} {status}: {list(content)}")
    assert wrong == []


def test_cp_security_is_declared_exactly_where_401_is_answered(platform: Platform) -> None:
    document = cp_document(platform)
    org = platform.instance.org["org_id"]
    mismatched = []
    with httpx.Client(base_url=platform.cp.url, timeout=10) as client:
        for method, path, operation in operations(document):
            answer = client.request(
                method, concrete(path, org), json={} if method != "GET" else None
            )
            declares = bool(operation.get("security"))
            if path == "/api/v1/auth/login" or path == "/api/v1/me/password":
                continue  # 401 for bad passwords, without credentials of a scheme
            if declares != (answer.status_code == 401):
                mismatched.append(f"{method} {path}: security={declares}, {answer.status_code}")
            if answer.status_code >= 400:
                check_answer(document, operation, answer)
    assert mismatched == []


def test_cp_answers_with_bad_tokens_and_bodies_fit_the_document(platform: Platform) -> None:
    document = cp_document(platform)
    org = platform.instance.org["org_id"]
    checked = 0
    for headers, body in (
        ({"Authorization": "Bearer a.b.c"}, b"{}"),
        ({"Authorization": f"Bearer {platform.access_token}"}, b"\xff{"),
        ({"Authorization": f"Bearer {platform.access_token}"}, b'{"unknown": 1}'),
    ):
        with httpx.Client(base_url=platform.cp.url, headers=headers, timeout=10) as client:
            for method, path, operation in operations(document):
                if method == "GET" or path.endswith(("/logout", "/rotate", "/import")):
                    continue  # nothing to send; logging out or rotating would change the world
                answer = client.request(
                    method,
                    concrete(path, org),
                    content=body,
                    headers={"Content-Type": "application/json"},
                )
                if answer.status_code >= 400:
                    check_answer(document, operation, answer)
                    checked += 1
    assert checked >= 60


def test_instance_answers_fit_its_document(platform: Platform) -> None:
    document = instance_document(platform)
    checked = 0
    for token in ("", "a.b.c", platform.org_token):
        with platform.instance.client(token or None) as client:
            for method, path, operation in operations(document):
                if path.startswith("/internal") or (
                    token == platform.org_token and method == "DELETE"
                ):
                    continue
                answer = client.request(
                    method,
                    concrete(path, platform.instance.org["org_id"]),
                    content=b"\xff{" if method != "GET" else None,
                    headers={"Content-Type": "application/json"},
                )
                assert answer.status_code < 500, answer.text
                if answer.status_code >= 400:
                    check_answer(document, operation, answer)
                    checked += 1
    assert checked >= 20
