"""Outgoing webhooks against real HTTP receivers (aiohttp servers of the test) that verify each
signature with the independent ``standardwebhooks`` library.

Proves: a platform admin registers an endpoint and sees its ``whsec_`` secret once (never in a
listing); creating an org delivers ``org.created``, signed (Standard Webhooks) with the same
``webhook-id`` on every attempt; a receiver failing twice gets the event on the third attempt
(``ORGPLANE_WEBHOOK_RETRY_SECONDS`` backoff), and one that always fails is marked failed after
``ORGPLANE_WEBHOOK_MAX_ATTEMPTS`` attempts, each attempt in the delivery log with its status.
Registration refuses private, loopback and link-local destinations unless
``ORGPLANE_WEBHOOK_ALLOW_PRIVATE`` is on, bad URLs and unknown event types (400 problem+json,
nothing stored), and anyone but a platform admin (403). A receiver that never answers does not
hold up the reconciler: orgs reach ``running`` while its delivery is still unanswered.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient
from sqlmodel import select
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from control_plane.app import create_app
from control_plane.db.models import WebhookDelivery
from tests.backups.live import admin_headers
from tests.fleet.receiver import dead_receiver, receiver
from tests.reconciler.test_lifecycle_local import wait_phase
from tests.support.api import add_user, assert_problem, login
from tests.support.live import FAST_RECONCILER, serve_control_plane
from tests.support.wait import eventually


@pytest.fixture
def db_backend() -> str:
    """SQLite here; the delivery claim is a conditional UPDATE like the reconciler's leases."""
    return "sqlite"


@pytest.fixture
async def hooks_client(make_settings: Any) -> AsyncIterator[AsyncTestClient[Any]]:
    settings = make_settings(
        ORGPLANE_WEBHOOK_ALLOW_PRIVATE="true",
        ORGPLANE_WEBHOOK_RETRY_SECONDS="0.2",
        ORGPLANE_WEBHOOK_MAX_ATTEMPTS="3",
    )
    async with AsyncTestClient(create_app(settings), base_url="http://127.0.0.1:8080") as client:
        yield client


async def _register(client: Any, headers: dict[str, str], url: str, *types: str) -> Any:
    answer = await client.post(
        "/api/v1/webhooks", headers=headers, json={"url": url, "event_types": list(types)}
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


async def _deliveries(client: Any, headers: dict[str, str], endpoint_id: str) -> list[Any]:
    answer = await client.get(f"/api/v1/webhooks/{endpoint_id}/deliveries", headers=headers)
    assert answer.status_code == 200, answer.text
    items: list[Any] = answer.json()["items"]
    return items


async def test_signed_deliveries_retries_and_failure(hooks_client: AsyncTestClient[Any]) -> None:
    client = hooks_client
    await add_user(client, "root@example.com", admin=True)
    admin = await login(client, "root@example.com")
    async with receiver(script=[500, 500]) as flaky, receiver(then=503) as broken:
        made = await _register(client, admin, flaky.url, "org.created", "org.suspended")
        assert made["secret"].startswith("whsec_")
        flaky.secret = made["secret"]
        gone = await _register(client, admin, broken.url, "org.created")
        broken.secret = gone["secret"]
        listed = (await client.get("/api/v1/webhooks", headers=admin)).json()["items"]
        assert [e["id"] for e in listed] == [made["id"], gone["id"]]
        assert all("secret" not in e for e in listed)
        assert made["secret"] not in str(listed)

        created = await client.post(
            "/api/v1/orgs", headers=admin, json={"name": "Acme", "slug": "acme"}
        )
        assert created.status_code == 202, created.text

        async def settled(endpoint_id: str) -> Any:
            items = await _deliveries(client, admin, endpoint_id)
            return items if items and items[0]["status"] != "pending" else None

        (delivered,) = await eventually(lambda: settled(made["id"]), what="the delivery")
        (failed,) = await eventually(lambda: settled(gone["id"]), what="the failed delivery")

    assert delivered["status"] == "succeeded"
    assert delivered["attempts"] == 3
    assert [a["status_code"] for a in delivered["attempt_log"]] == [500, 500, 200]
    assert failed["status"] == "failed"
    assert failed["attempts"] == 3  # ORGPLANE_WEBHOOK_MAX_ATTEMPTS
    assert [a["status_code"] for a in failed["attempt_log"]] == [503, 503, 503]

    # Every attempt verified with the independent library, one webhook-id for the message.
    assert len(flaky.received) == 3
    assert all(r.verified is not None for r in flaky.received)
    assert len({r.headers["webhook-id"] for r in flaky.received}) == 1
    payload = flaky.payloads()[-1]
    assert payload["type"] == "org.created"
    assert payload["data"]["slug"] == "acme"
    assert payload["data"]["org_id"] == created.json()["id"]
    assert all(r.verified is not None for r in broken.received)
    # Each endpoint has its own key: the other's secret does not verify these deliveries.
    first = flaky.received[0]
    with pytest.raises(WebhookVerificationError):
        Webhook(gone["secret"]).verify(first.body, first.headers)


async def test_registration_refuses_private_destinations_and_bad_input(
    client: AsyncTestClient[Any], admin: dict[str, str]
) -> None:
    """Default settings: ORGPLANE_WEBHOOK_ALLOW_PRIVATE is off."""
    refused = [
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/hook",
    ]
    for url in refused:
        answer = await client.post(
            "/api/v1/webhooks", headers=admin, json={"url": url, "event_types": ["org.created"]}
        )
        assert_problem(answer, 400, "webhook_destination_refused")
    for body, code in [
        ({"url": "ftp://example.com/x", "event_types": ["org.created"]}, "invalid_webhook_url"),
        ({"url": "http://u:p@example.com/", "event_types": ["org.created"]}, "invalid_webhook_url"),
        ({"url": "https://example.com/", "event_types": ["no.such"]}, "invalid_event_type"),
    ]:
        answer = await client.post("/api/v1/webhooks", headers=admin, json=body)
        assert_problem(answer, 400, code)
    await add_user(client, "user@example.com")
    user = await login(client, "user@example.com")
    answer = await client.post(
        "/api/v1/webhooks",
        headers=user,
        json={"url": "https://example.com/", "event_types": ["org.created"]},
    )
    assert_problem(answer, 403, "platform_admin_required")
    assert_problem(await client.get("/api/v1/webhooks", headers=user), 403)
    assert (await client.get("/api/v1/webhooks", headers=admin)).json()["items"] == []


@pytest.mark.slow
async def test_a_dead_receiver_does_not_hold_up_the_reconciler(
    make_settings: Any, unused_tcp_port: int, tmp_path: Path
) -> None:
    settings = make_settings(
        **FAST_RECONCILER,
        ORGPLANE_PORT=str(unused_tcp_port),
        ORGPLANE_WEBHOOK_ALLOW_PRIVATE="true",
    )
    async with (
        dead_receiver() as url,
        serve_control_plane(settings, unused_tcp_port) as app,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{unused_tcp_port}", timeout=60) as http,
    ):
        admin = await admin_headers(app, http)
        await _register(http, admin, url, "org.created", "instance.unhealthy")
        for slug in ("first", "second"):
            created = await http.post(
                "/api/v1/orgs", headers=admin, json={"name": slug.title(), "slug": slug}
            )
            assert created.status_code == 202, created.text
        for slug in ("first", "second"):
            await wait_phase(http, admin, slug, "running", timeout=60)

        async def deliveries() -> list[WebhookDelivery]:
            async with app.state.runtime.sessions() as db:
                rows = list((await db.exec(select(WebhookDelivery))).all())
            return rows if len(rows) == 2 else []

        rows = await eventually(deliveries, what="both org.created deliveries")
        # Both orgs run, and the receiver has answered nothing: no delivery succeeded, none
        # has an HTTP status, and none was given up on.
        assert {(d.event_type, d.status) for d in rows} == {("org.created", "pending")}
        assert [a for d in rows for a in d.attempt_log if a["status_code"] is not None] == []
