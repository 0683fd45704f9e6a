"""``orgplane oauth-clients create|list|delete`` on a SQLite database from settings: the secret
printed once and stored hashed, bad input refused with the API's message, audited as ``cli``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlmodel import select

from control_plane.cli.main import main
from control_plane.db.models import AuditEvent, OAuthClient, SigningKey
from control_plane.runtime import Runtime
from control_plane.settings import get_settings


def rows() -> tuple[list[OAuthClient], list[AuditEvent], list[SigningKey]]:
    async def read() -> tuple[list[OAuthClient], list[AuditEvent], list[SigningKey]]:
        runtime = Runtime.build(get_settings())
        try:
            async with runtime.sessions() as db:
                return (
                    list((await db.exec(select(OAuthClient))).all()),
                    list((await db.exec(select(AuditEvent))).all()),
                    list((await db.exec(select(SigningKey))).all()),
                )
        finally:
            await runtime.close()

    return asyncio.run(read())


def test_create_list_delete(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate"]) == 0
    capsys.readouterr()
    uri = "https://wiki.example.com/cb"
    assert main(["oauth-clients", "create", "Wiki", "--redirect-uri", uri, "--first-party"]) == 0
    out = capsys.readouterr().out.splitlines()
    client_id = next(line for line in out if line.startswith("client_id: ")).split()[1]
    secret = next(line for line in out if line.startswith("client_secret: ")).split()[1]
    assert secret.startswith("ocs_")
    assert main(["oauth-clients", "list"]) == 0
    table = capsys.readouterr().out
    assert client_id in table
    assert uri in table
    assert secret not in table
    [row], events, keys = rows()
    assert row.secret_hash
    assert secret not in row.secret_hash
    assert [(e.action, e.actor_email) for e in events] == [("oauth_client.create", "cli")]
    assert "RS256" in [k.alg for k in keys]
    assert main(["oauth-clients", "delete", client_id]) == 0
    assert main(["oauth-clients", "delete", client_id]) == 1
    assert "No such OAuth client" in capsys.readouterr().err
    assert rows()[0] == []


def test_bad_redirect_uri_is_refused(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate"]) == 0
    command = ["oauth-clients", "create", "Wiki", "--type", "public"]
    assert main([*command, "--redirect-uri", "http://wiki.example.com/cb"]) == 1
    assert "https" in capsys.readouterr().err
    assert rows()[0] == []
