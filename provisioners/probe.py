"""Ask an instance whether it is ready, the way the control plane reaches it.

Backends whose engine cannot say "ready" soon enough (a local process; a container whose Docker
health check has not run yet) ask ``/readyz`` directly, with a short timeout so a status call
never hangs on an instance that does not answer.
"""

from __future__ import annotations

import httpx

READY_PATH = "/readyz"


def instance_client(endpoint: str, *, timeout: float) -> httpx.AsyncClient:
    """A client for one call to an instance's internal endpoint (no proxies from the
    environment). Loading the CA bundle costs ~50 ms of CPU per client, so a plain-HTTP endpoint
    (the usual internal address, probed many at once in a burst) gets a client without it."""
    return httpx.AsyncClient(
        timeout=timeout, trust_env=False, verify=endpoint.startswith("https://")
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
