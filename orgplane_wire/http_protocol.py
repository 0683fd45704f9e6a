"""uvicorn's HTTP protocol, answering the requests its parser refuses with problem+json.

A request that is not HTTP (a broken request line, a target outside ASCII, a control character
in a header, a malformed chunked body) never reaches the app: uvicorn's httptools protocol
answers it 400 in text/plain and closes. Every other error of both services is an RFC 9457
problem document, so :class:`ProblemHttpToolsProtocol` writes that one as a problem too (code
``bad_request``), with the same status, headers and close. Both the control plane and the
instance serve with it (``http=HTTP_PROTOCOL``), beside ``ws_handshake``'s WebSocket protocol.
"""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from orgplane_wire.problems import PROBLEM_JSON, problem_body

#: What to pass as uvicorn's ``http`` option.
HTTP_PROTOCOL = "orgplane_wire.http_protocol:ProblemHttpToolsProtocol"


class ProblemHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol whose parser refusals are problem+json."""

    def send_400_response(self, msg: str) -> None:
        """Answer 400 ``bad_request`` as a problem document, then close (as uvicorn does)."""
        body = problem_body(
            status=400,
            code="bad_request",
            title="Bad request",
            detail=f"{msg} The request is not valid HTTP/1.1.",
        )
        content = [STATUS_LINE[400]]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend(
            [
                b"content-type: " + PROBLEM_JSON.encode("ascii") + b"\r\n",
                b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
                b"connection: close\r\n",
                b"\r\n",
                body,
            ]
        )
        self.transport.write(b"".join(content))
        self.transport.close()
