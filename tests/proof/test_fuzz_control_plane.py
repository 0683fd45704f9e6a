"""Fuzz every operation of the control plane's OpenAPI document with two orgs' identities.

Properties: no answer is a 5xx, whoever asks; no answer to org B's owner or member carries org
A's name or emails, nor A's ids unless the request itself carried them (an echo); and B's
identity aimed at A's own ids (path parameters fixed to A's org, slug and user ids) never gets a
2xx. Discovery and JWKS are public by design and exempt from the leak check.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis

from tests.proof.conftest import Scale
from tests.proof.fuzzing import FuzzReport, fuzz, no_server_error, path_ids, request_text
from tests.proof.world import Tenant, leaked, login, staff_token

pytestmark = pytest.mark.slow

PUBLIC_PREFIXES = ("/.well-known/",)


def guarded_against(owner: Tenant, *, aimed: bool) -> Any:
    """A check for answers to the other org: no 5xx, no leak of ``owner``; 2xx refused too
    when the request was ``aimed`` at ``owner``'s own ids."""

    def check(case: Any, response: Any) -> str | None:
        problem = no_server_error(case, response)
        if problem or case.path.startswith(PUBLIC_PREFIXES):
            return problem
        if aimed and 200 <= response.status_code < 300:
            return f"accepted on {owner.label}'s resource"
        found = leaked(owner, response.content.decode(errors="replace"), request_text(response))
        return f"leaks {owner.label}'s {found}" if found else None

    return check


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_control_plane_api_fuzz(tenants: dict[str, Any], scale: Scale, seed: int) -> None:
    cp, a, b = tenants["cp"], tenants["A"], tenants["B"]
    schema = schemathesis.openapi.from_url(cp.url + "/api/schema/openapi.json")
    report = FuzzReport()
    common = {"base_url": cp.url, "examples": scale.fuzz_examples, "seed": seed, "report": report}
    # The org's own people, platform staff (every route open) and strangers: no 5xx.
    # Every identity fuzzes with a login of its own (the world's tokens are shared with other
    # suites), and those with a token leave logout alone: it ends the token it is sent with,
    # so the rest of their run would only meet 401s; the anonymous run still fuzzes logout.
    staff = bearer(staff_token(cp))
    keep_identity = ("POST /api/v1/auth/logout",)
    for identity, headers in (
        ("A owner", bearer(login(cp, a.owner_email)[0])),
        ("staff", staff),
        ("anonymous", {}),
    ):
        skip = keep_identity if headers else ()
        fuzz(schema, identity=identity, headers=headers, check=no_server_error, skip=skip, **common)
    # B's people with generated ids, then aimed at A's ids.
    a_ids = path_ids({"org_id": a.org_id, "org_ref": a.slug, "user_id": a.owner_id})
    for identity, email in (("B owner", b.owner_email), ("B member", b.member_email)):
        token = login(cp, email)[0]
        fuzz(
            schema,
            identity=identity,
            headers=bearer(token),
            check=guarded_against(a, aimed=False),
            skip=keep_identity,
            **common,
        )
        fuzz(
            schema,
            identity=identity + " at A's ids",
            headers=bearer(token),
            check=guarded_against(a, aimed=True),
            path_parameters=a_ids,
            only_fixed=True,
            skip=keep_identity,
            **common,
        )
    print(f"control-plane fuzz seed={seed}: {report.summary()}")
    assert not report.findings, f"seed={seed}\n{report.summary()}"
    assert report.requests >= 4 * scale.fuzz_examples
    # A's org came through B's fuzzing unchanged.
    owner = bearer(login(cp, a.owner_email)[0])
    answer = httpx.get(f"{cp.url}/api/v1/orgs/{a.org_id}", headers=owner)
    assert answer.status_code == 200, answer.text
    assert answer.json()["name"] == a.name
