"""Both servers keep an idle keep-alive connection open longer than the clients in front of them.

A server that closes an idle connection just as a client reuses it fails that client's request
(the client reads nothing: httpx's ``ReadError``, a 502 from Traefik). uvicorn closed idle
connections after 5 s, the same as httpx's pool expiry and far less than Traefik's 90 s; the
proof suite saw ``ReadError`` on ``POST /oauth/token`` under load. Now the servers wait longer
than those clients, so the client always gives up first.

How it failed before: with uvicorn's default of 5 s, both second requests below read an empty
answer (the server had closed the socket after 5 s idle).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.instance.processes import ControlPlane, OrgInstance

pytestmark = pytest.mark.slow

#: Longer than uvicorn's 5 s default and httpx's 5 s pool expiry.
IDLE_SECONDS = 6.5


async def _get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> bytes:
    writer.write(f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    await asyncio.wait_for(reader.readexactly(length), timeout=10)
    return head.split(b"\r\n", 1)[0]


async def _idle_then_reuse(port: int, host: str) -> tuple[bytes, bytes]:
    """Two requests on one connection, ``IDLE_SECONDS`` of silence between them."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        first = await _get(reader, writer, host)
        # The idle period is what is tested: nothing else is awaited here.
        await asyncio.sleep(IDLE_SECONDS)
        try:
            second = await _get(reader, writer, host)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            second = f"connection closed while idle: {exc!r}".encode()
        return first, second
    finally:
        writer.close()


def test_an_idle_connection_is_still_served_after_longer_than_clients_keep_theirs(
    tmp_path: Path,
) -> None:
    cp = ControlPlane(tmp_path / "cp")
    cp.data_dir.mkdir()
    cp.start()
    instance = None
    try:
        org = asyncio.run(cp.seed_org("keepalive", "owner@keepalive.test"))
        instance = OrgInstance(org, cp, tmp_path / "instance")
        instance.start()

        async def both() -> list[tuple[bytes, bytes]]:
            assert instance is not None
            return list(
                await asyncio.gather(
                    _idle_then_reuse(cp.port, "127.0.0.1"),
                    _idle_then_reuse(instance.port, instance.hostname),
                )
            )

        for first, second in asyncio.run(both()):
            assert first == b"HTTP/1.1 200 OK"
            assert second == b"HTTP/1.1 200 OK"
    finally:
        if instance is not None:
            instance.stop()
        cp.stop()


def test_orgplane_keep_alive_timeout_is_what_the_control_plane_serves_with(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The setting reaches uvicorn (the test above covers the default on the wire), and so do
    the address and port to listen on (ORGPLANE_HOST, ORGPLANE_PORT)."""
    import uvicorn

    from control_plane.cli import server
    from control_plane.settings import get_settings

    served: dict[str, Any] = {}
    monkeypatch.setenv("ORGPLANE_KEEP_ALIVE_TIMEOUT", "7")
    monkeypatch.setenv("ORGPLANE_HOST", "127.0.0.2")
    monkeypatch.setenv("ORGPLANE_PORT", "18123")
    monkeypatch.setattr(uvicorn, "run", lambda *_args, **kwargs: served.update(kwargs))
    get_settings.cache_clear()
    try:
        server._run_server()
    finally:
        get_settings.cache_clear()
    assert served["timeout_keep_alive"] == 7
    assert (served["host"], served["port"]) == ("127.0.0.2", 18123)
