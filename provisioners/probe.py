"""Ask an instance whether it is ready, the way the control plane reaches it.

Backends whose engine cannot say "ready" soon enough (a local process; a container whose Docker
health check has not run yet) ask ``/readyz`` directly, with a short timeout so a status call
never hangs on an instance that does not answer.
"""

from __future__ import annotations

import httpx
import structlog

READY_PATH = "/readyz"


def forwarded_request_id() -> dict[str, str]:
    """The ``X-Request-ID`` header of the request being served, if any: the ``request_id``
    bound in structlog's context (the control plane binds it per request), so the instance logs
    its side of the call under the same id. None outside a request (a reconciler pass)."""
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    return {"X-Request-ID": request_id} if isinstance(request_id, str) and request_id else {}


def instance_client(endpoint: str, *, timeout: float) -> httpx.AsyncClient:
    """A client for one call to an instance's internal endpoint (no proxies from the
    environment), carrying the request id being served (:func:`forwarded_request_id`). Loading
    the CA bundle costs ~50 ms of CPU per client, so a plain-HTTP endpoint (the usual internal
    address, probed many at once in a burst) gets a client without it."""
    return httpx.AsyncClient(
        timeout=timeout,
        trust_env=False,
        verify=endpoint.startswith("https://"),
        headers=forwarded_request_id(),
    )


async def answers_ready(endpoint: str, *, wait: float = 0.5) -> bool:
    """Whether ``GET {endpoint}/readyz`` answers 200 within ``wait`` seconds."""
    if not endpoint:
        return False
    try:
        async with instance_client(endpoint, timeout=wait) as client:
            response = await client.get(endpoint.rstrip("/") + READY_PATH)
    except (httpx.HTTPError, OSError):
        return False
    return response.status_code == 200
