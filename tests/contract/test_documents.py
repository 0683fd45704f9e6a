"""Real contract documents validate against the checked-in schemas: the heartbeats an org
instance sends to a real control plane and the answers it gets, the claims of an org token
from a real token exchange, and the pool assignment the reconciler builds for a real org."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import jsonschema
import jwt
import pytest
from litestar.testing import AsyncTestClient

from control_plane.capacity.spares import org_environment
from control_plane.db.models import Instance, Org
from control_plane.reconciler.spec import build_spec
from org_instance.app import create_app
from orgplane_wire.contract import CONTRACT_VERSION, HEARTBEAT_PATH
from tests.instance.helpers import instance_config
from tests.instance.test_heartbeat_endpoint import make_instance_row
from tests.support.api import add_user, direct_db, runtime_of
from tests.support.live import serve_control_plane
from tests.support.tokens import exchange, login_body, make_org
from tests.support.wait import eventually

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "contract" / f"v{CONTRACT_VERSION}"


def validator(stem: str) -> jsonschema.Draft202012Validator:
    """A validator of the checked-in schema ``stem`` (format checks on)."""
    schema = json.loads((SCHEMAS / f"{stem}.schema.json").read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


@pytest.fixture
def db_backend() -> str:
    """The documents do not depend on the database: SQLite only."""
    return "sqlite"


class Recorder:
    """httpx event hooks keeping each heartbeat an instance sent and the answer it got."""

    def __init__(self) -> None:
        self.exchanges: list[tuple[dict[str, Any], int, dict[str, Any]]] = []

    async def on_response(self, response: httpx.Response) -> None:
        if response.request.url.path == HEARTBEAT_PATH:
            await response.aread()
            sent = json.loads(response.request.content)
            self.exchanges.append((sent, response.status_code, response.json()))


async def test_an_instances_heartbeats_and_the_control_planes_answers_match_the_schemas(
    make_settings: Any, unused_tcp_port: int, tmp_path: Path
) -> None:
    settings = make_settings(ORGPLANE_PORT=str(unused_tcp_port), ORGPLANE_HEARTBEAT_INTERVAL="0.1")
    recorder = Recorder()
    async with (
        serve_control_plane(settings, unused_tcp_port) as app,
        httpx.AsyncClient(event_hooks={"response": [recorder.on_response]}) as http,
    ):
        org_id, credential = await make_instance_row(SimpleNamespace(app=app), "schema-beats")
        config = instance_config(
            tmp_path / "instance",
            org_id=org_id,
            instance_credential=credential,
            control_plane_url=f"http://127.0.0.1:{unused_tcp_port}",
            heartbeat_interval=0.05,
        )
        # The instance's lifespan runs on this loop, as the served control plane does.
        async with create_app(config, http=http).lifespan():
            await eventually(
                lambda: len(recorder.exchanges) >= 3, what="three heartbeats", interval=0.02
            )
        async with app.state.runtime.sessions() as db:
            instance = await db.get(Instance, org_id)
            assert instance is not None
            assert instance.contract_version == CONTRACT_VERSION
    body_schema, answer_schema = validator("heartbeat-body"), validator("heartbeat-answer")
    for sent, status, answer in recorder.exchanges[:3]:
        assert status == 200, answer
        body_schema.validate(sent)
        answer_schema.validate(answer)
        assert sent["contract_version"] == answer["contract_version"] == CONTRACT_VERSION
        assert answer["accepted"] is True


async def test_an_org_token_from_a_real_exchange_has_the_claims_of_the_schema(
    client: AsyncTestClient[Any],
) -> None:
    user_id = await add_user(client, "schema-claims@example.com")
    org_id = await make_org(client, "schema-claims", members={user_id: "owner"}, plan="team")
    access = (await login_body(client, "schema-claims@example.com"))["access_token"]
    answer = await exchange(client, access, audience=f"urn:orgplane:org:{org_id}")
    assert answer.status_code == 200, answer.text
    claims = jwt.decode(answer.json()["access_token"], options={"verify_signature": False})
    validator("org-token-claims").validate(claims)
    assert claims["org_id"] == org_id
    wrong = {**claims, "org_role": "superuser"}
    assert not validator("org-token-claims").is_valid(wrong)


async def test_the_pool_assignment_the_reconciler_builds_matches_the_schema(
    client: AsyncTestClient[Any],
) -> None:
    org_id, credential = await make_instance_row(client, "schema-pool")
    runtime = runtime_of(client)
    async with direct_db(client) as db:
        instance = await db.get(Instance, org_id)
        assert instance is not None
        instance.credential_enc = runtime.box.encrypt(credential.encode())
        org = await db.get(Org, org_id)
        assert org is not None
        spec = await build_spec(runtime, db, org=org, instance=instance)
    assignment = {"env": org_environment(spec)}
    validator("pool-assignment").validate(assignment)
    assert assignment["env"]["ORGPLANE_ORG_ID"] == org_id
    assert not validator("pool-assignment").is_valid({"env": {"ORGPLANE_PORT": 8000}})
