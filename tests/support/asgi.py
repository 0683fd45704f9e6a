"""Drive an app at the ASGI level, for what a test client cannot send."""

from __future__ import annotations

from typing import Any

from litestar.types import Message


async def hang_up_mid_body(
    app: Any, path: str, *, host: str, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    """POST ``path`` announcing a 1,000-byte JSON body, send 10 bytes, then disconnect (as a
    client that goes away mid-upload does). Returns the status and body the app answered."""
    raw_headers = [
        (b"host", host.encode()),
        (b"content-type", b"application/json"),
        (b"content-length", b"1000"),
        *((k.lower().encode(), v.encode()) for k, v in (headers or {}).items()),
    ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": raw_headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
        "state": {},
    }
    events: list[Message] = [
        {"type": "http.request", "body": b'{"email": ', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return events.pop(0) if len(events) > 1 else events[0]

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return int(start["status"]), body
