"""The contract's JSON Schemas: generated from ``orgplane_wire/contract.py``, checked in under
``docs/contract/v1/``, and ``orgplane contract schemas --check`` failing on drift."""

from __future__ import annotations

import json
import typing
from pathlib import Path

import jsonschema
import pytest

from control_plane.cli.main import main
from control_plane.contract.schemas import CLOSED, DOCUMENTS, rendered, schema_of
from control_plane.instances.heartbeat import HeartbeatIn, UsageIn
from orgplane_wire.contract import CONTRACT_VERSION

ROOT = Path(__file__).resolve().parents[2]
CHECKED_IN = ROOT / "docs" / "contract" / f"v{CONTRACT_VERSION}"


def test_the_checked_in_schemas_are_exactly_what_the_code_generates() -> None:
    expected = rendered()
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in CHECKED_IN.glob("*.schema.json")}
    assert sorted(on_disk) == sorted(expected), "run `orgplane contract schemas`"
    for name, text in expected.items():
        assert on_disk[name] == text, f"{name} drifted: run `orgplane contract schemas`"


def test_the_check_command_passes_on_the_repository_and_fails_on_each_kind_of_drift(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["contract", "schemas", "--check", "--out", str(ROOT / "docs" / "contract")]) == 0
    out = tmp_path / "contract"
    assert main(["contract", "schemas", "--out", str(out)]) == 0
    written = sorted(p.name for p in (out / "v1").iterdir())
    assert written == sorted(f"{stem}.schema.json" for stem in DOCUMENTS)
    assert main(["contract", "schemas", "--check", "--out", str(out)]) == 0
    capsys.readouterr()

    answer = out / "v1" / "heartbeat-answer.schema.json"
    edited = json.loads(answer.read_text())
    edited["required"].remove("contract_version")
    answer.write_text(json.dumps(edited, indent=2) + "\n")
    (out / "v1" / "pool-assignment.schema.json").unlink()
    (out / "v1" / "stale.schema.json").write_text("{}\n")
    assert main(["contract", "schemas", "--check", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "heartbeat-answer.schema.json: differs" in err
    assert "pool-assignment.schema.json: missing" in err
    assert "stale.schema.json: no such document" in err
    assert "heartbeat-body.schema.json" not in err


@pytest.mark.parametrize("stem", sorted(DOCUMENTS))
def test_each_schema_is_a_valid_draft_2020_12_schema_of_its_typeddict(stem: str) -> None:
    schema = schema_of(stem)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["x-contract-version"] == CONTRACT_VERSION
    typed = DOCUMENTS[stem]
    assert set(schema["properties"]) == set(typed.__annotations__)
    hints = typing.get_type_hints(typed, include_extras=True)
    optional = {k for k, v in hints.items() if typing.get_origin(v) is typing.NotRequired}
    required = set(hints) - optional if typed.__total__ else set()
    assert set(schema["required"]) == required
    assert ":data:" not in json.dumps(schema)  # docstrings lose their Sphinx roles


def test_closed_schemas_are_the_documents_the_control_plane_refuses_unknown_keys_in() -> None:
    assert HeartbeatIn.__struct_config__.forbid_unknown_fields
    assert UsageIn.__struct_config__.forbid_unknown_fields
    body = schema_of("heartbeat-body")
    assert body["additionalProperties"] is False
    assert body["$defs"]["UsageCounters"]["additionalProperties"] is False
    assert {"HeartbeatBody", "UsageCounters"} == CLOSED
    answer = schema_of("heartbeat-answer")
    assert "additionalProperties" not in answer  # readers ignore what they do not know
    validator = jsonschema.Draft202012Validator(body)
    minimal = {
        "org_id": "o",
        "instance_id": "i",
        "version": "1",
        "started_at": "2026-01-01T00:00:00+00:00",
        "status": "ok",
        "seq": 1,
        "db_ok": True,
        "redis_ok": True,
        "usage": {},
    }
    assert validator.is_valid(minimal)
    assert not validator.is_valid({**minimal, "extra": 1})
    assert not validator.is_valid({**minimal, "usage": {"extra": 1}})
    assert not validator.is_valid({**minimal, "status": "broken"})
