"""The kit's parts without Docker: its tokens are each wrong for the reason it names, its
control plane answers with a valid HeartbeatAnswer, its body check reads the contract."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import jwt
import pytest

from conformance_kit import run_conformance, schema
from conformance_kit.fake_cp import Beat, FakeControlPlane
from conformance_kit.heartbeats import body_problems
from conformance_kit.report import Report
from conformance_kit.schema import problems
from conformance_kit.signer import Signer
from control_plane.signing.jws import unverified_kid, verify
from orgplane_wire.contract import HEARTBEAT_PATH, HeartbeatAnswer, org_audience
from orgplane_wire.jose_header import InvalidToken
from tests.conformance_kit.helpers import free_port_in_range
from tests.conformance_kit.test_instance_image import WITH_REDIS
from tests.support.services import REPO

ISSUER = "http://kit.test"
ORG = "org-a"


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer.create(issuer=ISSUER, org_id=ORG, org_slug="a")


def platform_verify(signer: Signer, token: str) -> dict[str, object]:
    """The control plane's own verification of ``token`` against the kit's published key."""
    unverified_kid(token)
    key = jwt.PyJWK(signer.jwks()["keys"][0], algorithm=signer.key.alg)
    return verify(token, key, issuer=ISSUER, audience=org_audience(ORG))


def test_the_valid_token_verifies_as_an_org_token(signer: Signer) -> None:
    claims = platform_verify(signer, signer.token())
    assert claims["org_id"] == ORG
    assert claims["aud"] == org_audience(ORG)


@pytest.mark.parametrize(
    ("clause", "reason"),
    [
        ("tokens.forged", "Signature verification failed"),
        ("tokens.expired", "expired"),
        ("tokens.not-yet-valid", "not yet valid"),
        ("tokens.wrong-org", "Audience"),
        ("tokens.wrong-issuer", "issuer"),
        ("tokens.alg-none", "algorithm not allowed"),
        ("tokens.alg-hs256", "algorithm not allowed"),
    ],
)
def test_each_bad_token_is_refused_for_its_reason(signer: Signer, clause: str, reason: str) -> None:
    _, token = signer.bad_tokens(other_org="org-b")[clause]
    with pytest.raises(InvalidToken, match=reason):
        platform_verify(signer, token)


def test_the_kit_control_plane_checks_the_credential_and_answers_the_contract() -> None:
    with FakeControlPlane(
        jwks={"keys": []}, credential="right", interval=0.5, port=free_port_in_range()
    ) as cp:
        url = cp.base_url + HEARTBEAT_PATH
        body = {"org_id": ORG}
        good = httpx.post(url, json=body, headers={"Authorization": "Bearer right"})
        bad = httpx.post(url, json=body, headers={"Authorization": "Bearer wrong"})
        cp.available = False
        down = httpx.post(url, json=body, headers={"Authorization": "Bearer right"})
        newer = {"org_id": ORG, "contract_version": 99}
        cp.available = True
        unsupported = httpx.post(url, json=newer, headers={"Authorization": "Bearer right"})
        beats = cp.snapshot()
    assert good.status_code == 200
    answer = good.json()
    assert answer["contract_version"] == 1
    assert problems(HeartbeatAnswer, answer) == ""
    assert good.json()["interval"] == 0.5
    assert (bad.status_code, bad.json()["code"]) == (401, "invalid_credential")
    assert (down.status_code, down.json()["code"]) == (503, "unavailable")
    assert unsupported.status_code == 409
    assert unsupported.json()["code"] == "contract_version_unsupported"
    assert [b.credential_ok for b in beats] == [True, False, True, True]


def test_a_heartbeat_body_is_read_against_the_contract() -> None:
    body = {
        "org_id": ORG,
        "instance_id": "i-1",
        "version": "1",
        "started_at": "2026-01-01T00:00:00Z",
        "status": "ok",
        "seq": 1,
        "db_ok": True,
        "redis_ok": False,
        "usage": {"requests": 3},
    }

    def check(value: object) -> str:
        return body_problems(Beat(0.0, True, value, 200), org_id=ORG, instance_id="i-1")

    assert check(body) == ""
    assert check({**body, "config_version": 2}) == ""  # NotRequired keys may be present
    assert check({**body, "status": "fine"}).startswith("status:")
    assert check({**body, "seq": "1"}).startswith("seq:")
    assert check({k: v for k, v in body.items() if k != "usage"}) == "usage: Field required"
    assert "names org 'org-b'" in check({**body, "org_id": "org-b"})
    assert check(None) != ""
    assert check({**body, "extra": 1}) == "extra: Extra inputs are not permitted"


def test_bodies_are_checked_against_the_json_schema_when_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "answer.schema.json").write_text(
        json.dumps({"type": "object", "properties": {"interval": {"maximum": 0.5}}})
    )
    monkeypatch.setattr(schema, "SCHEMA_DIR", tmp_path)
    schema._schema_validator.cache_clear()
    try:
        answer = {
            "accepted": True,
            "config_version": 1,
            "interval": 0.5,
            "limits": {},
            "contract_version": 1,
        }
        assert schema.schema_in_use("answer.schema.json")
        assert not schema.schema_in_use("absent.schema.json")
        assert problems(HeartbeatAnswer, answer, schema="answer.schema.json") == ""
        slow = {**answer, "interval": 2.0}
        assert problems(HeartbeatAnswer, slow) == ""  # the TypedDict allows any number
        assert problems(HeartbeatAnswer, slow, schema="answer.schema.json") == (
            "interval: 2.0 is greater than the maximum of 0.5 (answer.schema.json)"
        )
    finally:
        schema._schema_validator.cache_clear()


def test_a_report_is_ok_only_when_every_clause_ran_and_passed() -> None:
    report = Report(target="x")
    assert not report.ok  # nothing checked is no pass
    report.add("a.one", "must", True, "fine")
    assert report.ok
    report.add("b.two", "must too", False, "got 200")
    assert not report.ok
    assert report.failed == ["b.two"]
    assert "1/2 clauses passed; FAILED: b.two" in report.table()
    assert report.as_dict()["results"][1]["evidence"] == "got 200"


def test_the_docs_table_every_clause_a_run_reports() -> None:
    """docs/conformance.md lists the clauses of a run with Redis, in the order they run (the
    order test_instance_image asserts of a real run)."""
    text = (REPO / "docs" / "conformance.md").read_text()
    assert re.findall(r"^\| `([a-z0-9.-]+)` \|", text, flags=re.MULTILINE) == WITH_REDIS


def test_without_a_docker_engine_the_report_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    report = run_conformance(image="any:tag")
    assert report.failed == ["kit.run"]
    assert "No such file or directory" in report.results[0].evidence
