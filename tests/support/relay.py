"""A TCP relay from an address pods can reach to one they cannot.

The test cluster (tests/support/kubecluster.py) has no kube-proxy and no cluster DNS, and the
host's services (the API server, PostgreSQL, Redis) listen on loopback only. A pod reaches the
host at its address on the kubelet engine's bridge; a :class:`Relay` listening there passes each
connection on, byte for byte, to its target: what a Service and kube-proxy do in a real cluster.
The target is asked for per connection, so it may be a pod whose address is not known yet when
the relay (and the URL naming it) is made.

With ``delay``, every chunk the target sends is held that long before it is passed on: a slow
link or a loaded host, injected (tests/hibernation/test_handover_traefik.py).
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
import time
from collections.abc import Callable


def _pump(source: socket.socket, sink: socket.socket, delay: float = 0.0) -> None:
    if delay:
        _pump_late(source, sink, delay)
        return
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


def _pump_late(source: socket.socket, sink: socket.socket, delay: float) -> None:
    """Pass each chunk on ``delay`` seconds after it arrived (latency, not a slower pace)."""
    chunks: queue.Queue[tuple[float, bytes]] = queue.Queue()

    def send() -> None:
        with contextlib.suppress(OSError):
            while True:
                due, data = chunks.get()
                time.sleep(max(0.0, due - time.monotonic()))
                if not data:
                    break
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            chunks.put((time.monotonic() + delay, data))
    chunks.put((time.monotonic() + delay, b""))
    sender.join()


class Relay:
    """Listens on ``host`` (a port the OS chooses: :attr:`port`) and relays to ``target()``."""

    def __init__(
        self, host: str, target: Callable[[], tuple[str, int]], *, delay: float = 0.0
    ) -> None:
        self.target, self.delay = target, delay
        self.listener = socket.create_server((host, 0))
        self.host = host
        self.port: int = self.listener.getsockname()[1]
        self.open: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, name=f"relay-{self.port}", daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed
                return
            try:
                upstream = socket.create_connection(self.target(), timeout=10)
            except (OSError, LookupError, RuntimeError, ValueError):  # nothing there (yet)
                client.close()
                continue
            upstream.settimeout(None)
            self.open += [client, upstream]
            for args in ((client, upstream, 0.0), (upstream, client, self.delay)):
                threading.Thread(target=_pump, args=args, daemon=True).start()

    def close(self) -> None:
        """Stop listening and cut every relayed connection."""
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept (Linux)
        self.listener.close()
        for sock in self.open:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self.thread.join(timeout=10)
