"""uvicorn's WebSocket protocol, answering refused handshakes with problem+json, at once.

Two gaps of uvicorn 0.54's ``WebSocketsSansIOProtocol`` with websockets 17, both seen on the
wire before this module:

* When websockets' parser refuses a handshake request (a request line over its 8 kB limit, as a
  10 kB ``access_token`` query makes; header lines too long or too many; a request that does
  not parse), it queues its answer and waits to be flushed; uvicorn only flushes after a parsed
  request, so the client got nothing and the connection stayed open until the client gave up.
* websockets answers its refusals (bad ``Sec-WebSocket-Version``, missing key, ...) in
  text/plain, where every other error of ours is RFC 9457 problem+json.

:class:`ProblemServerProtocol` renders websockets' refusals as problem documents;
:class:`AnsweringWebSocketProtocol` uses it and flushes a parser refusal, then closes. Both the
control plane and the instance serve with it (``ws=WS_PROTOCOL``).
"""

from __future__ import annotations

import email.utils
import http
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.datastructures import Headers
from websockets.http11 import Response
from websockets.server import ServerProtocol
from websockets.typing import StatusLike

from orgplane_wire.problems import PROBLEM_JSON, problem_body

#: What to pass as uvicorn's ``ws`` option.
WS_PROTOCOL = "orgplane_wire.ws_handshake:AnsweringWebSocketProtocol"

_CODES = {
    400: "bad_request",
    403: "forbidden",
    414: "uri_too_long",
    426: "upgrade_required",
    431: "header_fields_too_large",
}


def problem_answer(status: StatusLike, detail: str) -> Response:
    """A handshake refusal as an HTTP/1.1 problem+json answer that closes the connection."""
    status = http.HTTPStatus(status)
    code = _CODES.get(status.value, "bad_request")
    body = problem_body(status=status.value, code=code, title=status.phrase, detail=detail)
    headers = Headers(
        [
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Connection", "close"),
            ("Content-Length", str(len(body))),
            ("Content-Type", PROBLEM_JSON),
        ]
    )
    return Response(status.value, status.phrase, headers, body)


class ProblemServerProtocol(ServerProtocol):
    """websockets' server protocol whose refusals are problem documents."""

    def reject(self, status: StatusLike, text: str) -> Response:
        """Refuse the handshake: ``text`` (websockets' own reason) becomes the ``detail``."""
        return problem_answer(status, text.strip())


class AnsweringWebSocketProtocol(WebSocketsSansIOProtocol):
    """``WebSocketsSansIOProtocol`` whose refusals are problem+json and always sent (see the
    module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # uvicorn builds its ServerProtocol inline, with the extension settings of its config;
        # changing the class keeps those and adds only the problem+json refusals.
        self.conn.__class__ = ProblemServerProtocol

    def data_received(self, data: bytes) -> None:
        """Feed the parser; when it refused the handshake, send its answer and close."""
        super().data_received(data)
        refused = self.conn.handshake_exc
        if self.handshake_initiated or refused is None or self.transport.is_closing():
            return
        queued = b"".join(self.conn.data_to_send())
        if not queued:  # the request did not parse at all: websockets only closes
            queued = problem_answer(400, "The handshake request is not valid HTTP.").serialize()
        self.handshake_initiated = self.handshake_complete = self.close_sent = True
        self.transport.write(queued)
        self.transport.close()
