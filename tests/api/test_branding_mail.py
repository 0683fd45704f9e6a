"""Emails call an org by its display name (its own or inherited), through a real SMTP server."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.test_mail_delivery import app_client
from tests.support.api import add_user, login
from tests.support.smtp import Mailbox, delivered, smtp_env, text_of


@pytest.fixture
def db_backend() -> str:
    return "sqlite"


async def test_invite_and_deletion_emails_use_the_display_name(
    make_settings: Any, smtp: tuple[int, Mailbox]
) -> None:
    port, box = smtp
    async with app_client(make_settings(**smtp_env(port))) as client:
        await add_user(client, "fay@example.com")
        fay = await login(client, "fay@example.com")
        for body in ({"name": "Acme", "slug": "acme"},
                     {"name": "Acme Eng", "slug": "acme-eng", "parent_id": "acme"}):  # fmt: skip
            assert (await client.post("/api/v1/orgs", headers=fay, json=body)).status_code == 202
        branded = await client.put("/api/v1/orgs/acme/branding", headers=fay,
                                   json={"display_name": "Acme Corporation"})  # fmt: skip
        assert branded.status_code == 200, branded.text
        # The child inherits the display name; its invite email says it.
        invited = await client.post(
            "/api/v1/orgs/acme-eng/invites", headers=fay, json={"email": "ann@example.com"}
        )
        assert invited.status_code == 201, invited.text
        (invite,) = await delivered(box, "ann@example.com", "invited")
        assert invite["Subject"].startswith("You are invited to Acme Corporation")
        assert "Acme Corporation" in text_of(invite)
        deleting = await client.delete("/api/v1/orgs/acme-eng?confirm=acme-eng", headers=fay)
        assert deleting.status_code == 202, deleting.text
        (deletion,) = await delivered(box, "fay@example.com", "deletion")
        assert deletion["Subject"] == "Acme Corporation is scheduled for deletion"
