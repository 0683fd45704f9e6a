"""A client that hangs up mid-body is not an error of ours, on either service.

Seen before the fix in a full run on a loaded machine: an org instance gave up on a heartbeat
while the control plane was reading its body; Litestar raised its 500 "client disconnected
prematurely", which both services logged as ``unhandled error`` with a traceback (and counted
as a 5xx). Run against the old code, each test below failed on the 500.
"""

from __future__ import annotations

import json
from typing import Any

from litestar.testing import AsyncTestClient
from structlog.testing import capture_logs

from tests.instance.conftest import HOST
from tests.instance.helpers import Signer, bearer
from tests.support.asgi import hang_up_mid_body


def _check(status: int, body: bytes, logs: list[dict[str, Any]]) -> None:
    assert status == 400, body
    assert json.loads(body)["code"] == "client_disconnected"
    assert "unhandled error" not in [e["event"] for e in logs]


async def test_control_plane_treats_a_hang_up_as_the_clients_doing(
    client: AsyncTestClient[Any],
) -> None:
    with capture_logs() as logs:
        status, body = await hang_up_mid_body(client.app, "/api/v1/auth/login", host="127.0.0.1")
    _check(status, body, logs)


async def test_instance_treats_a_hang_up_as_the_clients_doing(
    instance: AsyncTestClient[Any], signer: Signer, org_id: str
) -> None:
    with capture_logs() as logs:
        status, body = await hang_up_mid_body(
            instance.app, "/api/v1/sessions", host=HOST, headers=bearer(signer.token(org_id))
        )
    _check(status, body, logs)
