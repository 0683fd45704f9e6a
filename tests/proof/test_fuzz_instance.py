"""Fuzz a real org instance of org A with A's tokens and with B's.

The document is the one the instance serves at ``/api/schema/openapi.json``, built from the
very route handlers it registers, so it cannot drift from them.
Properties: with A's tokens no answer is a 5xx; with B's tokens (owner and member, at A's
hostname) every request to an authenticated route is refused (401/403/404/421), never 2xx,
and no answer carries A's data.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
import schemathesis

from org_instance.app import create_app
from org_instance.auth import UNAUTHENTICATED
from tests.instance.helpers import instance_config
from tests.proof.conftest import Scale
from tests.proof.fuzzing import FuzzReport, fuzz, no_server_error, path_ids, request_text
from tests.proof.world import Tenant, leaked

pytestmark = pytest.mark.slow

REFUSALS = frozenset({401, 403, 404, 421})


def instance_openapi() -> dict[str, Any]:
    """The OpenAPI document the org instance serves (built from its own route handlers)."""
    with tempfile.TemporaryDirectory() as scratch:
        app = create_app(instance_config(Path(scratch)))
    document: dict[str, Any] = app.openapi_schema.to_schema()
    return document


#: Probes that answer anyone and hold no org data.
PROBES = ("/healthz", "/readyz")


def own_credential(path: str) -> bool:
    """Routes the org token does not guard (the runner heartbeat has its own credential)."""
    return any(re.match(pattern, path) for pattern in UNAUTHENTICATED)


def refused_to(owner: Tenant) -> Any:
    """Every route the org token guards refuses the other org's token, the others do not
    accept it either, and nothing of ``owner``'s data is in any answer."""

    def check(case: Any, response: Any) -> str | None:
        problem = no_server_error(case, response)
        if problem or case.path in PROBES:
            return problem
        if own_credential(case.path) and 200 <= response.status_code < 300:
            return "accepted without its own credential"
        if not own_credential(case.path) and response.status_code not in REFUSALS:
            return f"not refused (expected one of {sorted(REFUSALS)})"
        found = leaked(owner, response.content.decode(errors="replace"), request_text(response))
        return f"leaks {owner.label}'s {found}" if found else None

    return check


def test_org_instance_api_fuzz(tenants: dict[str, Any], scale: Scale, seed: int) -> None:
    a, b = tenants["A"], tenants["B"]
    assert a.instance is not None
    schema = schemathesis.openapi.from_dict(instance_openapi())
    report = FuzzReport()
    common = {
        "base_url": a.instance.url,
        "examples": scale.fuzz_examples,
        "seed": seed,
        "report": report,
    }
    host = {"Host": a.hostname}
    own = path_ids({k: a.objects[v] for k, v in (("session_id", "session"), ("file_id", "file"))})
    for identity, token in (("A owner", a.owner_org_token), ("A member", a.member_org_token)):
        headers = {**host, "Authorization": f"Bearer {token}"}
        fuzz(schema, identity=identity, headers=headers, check=no_server_error, **common)
        fuzz(
            schema,
            identity=identity + " at own objects",
            headers=headers,
            check=no_server_error,
            path_parameters=own,
            only_fixed=True,
            **common,
        )
    for identity, token in (("B owner", b.owner_org_token), ("B member", b.member_org_token)):
        headers = {**host, "Authorization": f"Bearer {token}"}
        fuzz(schema, identity=identity, headers=headers, check=refused_to(a), **common)
        fuzz(
            schema,
            identity=identity + " at A's objects",
            headers=headers,
            check=refused_to(a),
            path_parameters=own,
            only_fixed=True,
            **common,
        )
    print(f"org-instance fuzz seed={seed}: {report.summary()}")
    assert not report.findings, f"seed={seed}\n{report.summary()}"
    assert report.requests >= 4 * scale.fuzz_examples
