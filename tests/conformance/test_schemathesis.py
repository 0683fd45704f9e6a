"""schemathesis against both services' own (now truthful) OpenAPI documents.

Each operation gets generated requests, valid and invalid (positive and negative modes), with
the caller's token; schemathesis' checks then hold every answer to the document: no 5xx, a
declared status, a declared content type, a body that fits the declared schema. Findings are
collected per operation, so one run names every operation that breaks its document.
``ORGPLANE_FUZZ_SEED`` replays a run.

Seen failing before: with Litestar's generated document every problem+json answer was an
undeclared content type, and 401/403/404/409 undeclared statuses.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conformance.conftest import Platform

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("ORGPLANE_SCHEMATHESIS_EXAMPLES", "12"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
#: Operations that would change the world under the other cases (log out the caller, rotate
#: the signing keys, delete the org) are left out; they are exercised elsewhere.
SKIP = {"POST /api/v1/auth/logout", "POST /api/v1/keys/rotate", "DELETE /api/v1/orgs/{org_ref}"}


def run(
    schema: Any, *, base_url: str, headers: dict[str, str], seed: int, fixed: dict[str, str]
) -> list[str]:
    """Fuzz every operation; the findings."""
    findings: list[str] = []
    with requests.Session() as session:
        for result in schema.get_all_operations():
            operation = result.ok()
            name = f"{operation.method.upper()} {operation.path}"
            if name in SKIP or operation.path.startswith("/internal"):
                continue
            names = {p.name for p in operation.path_parameters}
            chosen = {k: v for k, v in fixed.items() if k in names} or None
            strategy = st.one_of(
                [operation.as_strategy(m, path_parameters=chosen) for m in GenerationMode]
            )
            send = _sender(base_url, session, headers)
            try:
                hypothesis.seed(seed)(
                    hypothesis.settings(
                        max_examples=EXAMPLES,
                        deadline=None,
                        database=None,
                        phases=[Phase.generate],
                        suppress_health_check=list(HealthCheck),
                    )(hypothesis.given(case=strategy)(send))
                )()
            except FailureGroup as failure:  # schemathesis' report of this operation's failures
                findings.append(f"{name}: {str(failure)[:600]}")
    return findings


def _sender(base_url: str, session: Any, headers: dict[str, str]) -> Callable[[Any], None]:
    def send(case: Any) -> None:
        case.call_and_validate(
            base_url=base_url, session=session, headers=headers, checks=CHECKS, timeout=20
        )

    return send


@pytest.fixture
def seed() -> int:
    """A fixed default (CI repeats itself); ``ORGPLANE_FUZZ_SEED`` explores or replays."""
    return int(os.environ.get("ORGPLANE_FUZZ_SEED", "20261207"))


def test_control_plane_answers_match_its_document(platform: Platform, seed: int) -> None:
    schema = schemathesis.openapi.from_url(platform.cp.url + "/api/schema/openapi.json")
    org = platform.instance.org["org_id"]
    findings = run(
        schema,
        base_url=platform.cp.url,
        headers={"Authorization": f"Bearer {platform.access_token}"},
        seed=seed,
        fixed={"org_id": org, "org_ref": org},
    )
    assert not findings, f"seed={seed}\n" + "\n".join(sorted(set(findings))[:30])


def test_instance_answers_match_its_document(platform: Platform, seed: int) -> None:
    host = {"Host": platform.instance_host}
    url = f"{platform.instance.url}/api/schema/openapi.json"
    schema = schemathesis.openapi.from_url(url, headers=host)
    findings = run(
        schema,
        base_url=platform.instance.url,
        headers={**host, "Authorization": f"Bearer {platform.org_token}"},
        seed=seed,
        fixed={},
    )
    assert not findings, f"seed={seed}\n" + "\n".join(sorted(set(findings))[:30])
