"""The org's Redis (``pip install 'orgplane-instance-sdk[redis]'``): its namespace, and the
revocation list the control plane keeps there.

The control plane gives each org a Redis ACL user allowed only keys and channels under
``org:<org_id>:``; :meth:`OrgRedis.key` names things there. :class:`Revocations` follows the
org's revocation channel (``contract.revocations_channel``) after loading the list
(``contract.revocations_key``), and refuses, in memory, the tokens it names: a user's issued up
to a moment, every token up to a moment (``org``), one token (``jti:``), or all a retired key
signed (``kid:``, handed to the verifier). While it cannot follow the channel (Redis down, not
yet subscribed) it accepts only tokens issued within ``REVOCATION_FALLBACK_SECONDS``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from redis.asyncio import Redis

from orgplane_sdk.contract import (
    REVOCATION_FALLBACK_SECONDS,
    redis_namespace,
    revocations_channel,
    revocations_key,
)

log = logging.getLogger("orgplane_sdk.redis")
#: Seconds between pings while no revocation arrives (a dead connection shows up here).
PING_SECONDS = 2.0


class OrgRedis:
    """A Redis client for the org's ACL user, and :meth:`key` to name things in its namespace."""

    def __init__(self, url: str, org_id: str, **options: Any) -> None:
        if not url:
            raise ValueError("this org has no Redis (ORGPLANE_REDIS_URL is empty)")
        options.setdefault("socket_connect_timeout", 2)
        options.setdefault("socket_timeout", 5)
        self.client: Redis = Redis.from_url(url, **options)
        self.org_id = org_id
        self.namespace = redis_namespace(org_id)

    def key(self, name: str) -> str:
        """``name`` in the org's namespace: ``org:<org_id>:<name>``."""
        return f"{self.namespace}:{name}"

    async def ping(self) -> bool:
        """Whether Redis answers (for health checks; never raises)."""
        try:
            return bool(await self.client.ping())
        except Exception:
            return False

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()


class Revocations:
    """The org's revocation list as this instance knows it; :meth:`run` follows it."""

    def __init__(
        self,
        redis: OrgRedis,
        *,
        on_key_retired: Callable[[str], None] = lambda _kid: None,
        fallback: float = REVOCATION_FALLBACK_SECONDS,
    ) -> None:
        self.redis, self.fallback = redis, fallback
        self.on_key_retired = on_key_retired
        self.entries: dict[str, int] = {}
        #: Whether the channel is followed (else only recent tokens are accepted).
        self.live = False

    def refuses(self, claims: Mapping[str, Any], *, now: float | None = None) -> bool:
        """Whether the token with these (verified) claims must be refused now."""
        iat = claims.get("iat")
        if not isinstance(iat, int):
            return True
        if not self.live:
            return (time.time() if now is None else now) - iat > self.fallback
        for name in ("org", f"sub:{claims.get('sub')}"):
            until = self.entries.get(name)
            if until is not None and iat <= until:
                return True
        return f"jti:{claims.get('jti')}" in self.entries

    def apply(self, field: bytes | str, value: bytes | str | int) -> None:
        """Take one entry of the list (a later moment wins)."""
        try:
            name = field.decode() if isinstance(field, bytes) else field
            moment = int(value.decode() if isinstance(value, bytes) else value)
        except (ValueError, UnicodeDecodeError):
            return
        if name.startswith("kid:"):
            self.on_key_retired(name[4:])
        self.entries[name] = max(moment, self.entries.get(name, moment))

    async def run(self) -> None:
        """Follow the channel until cancelled; reconnect with backoff when Redis fails."""
        client, org_id = self.redis.client, self.redis.org_id
        backoff = 0.25
        while True:
            pubsub: Any = client.pubsub()
            try:
                await pubsub.subscribe(revocations_channel(org_id))
                for field, value in (await client.hgetall(revocations_key(org_id))).items():
                    self.apply(field, value)
                self.live, backoff = True, 0.25
                await self._listen(pubsub)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # degrade to recent tokens only, then reconnect
                log.warning("revocation channel down: %s", type(exc).__name__)
            finally:
                self.live = False
                await pubsub.aclose()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    async def _listen(self, pubsub: Any) -> None:
        quiet_since = time.monotonic()
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
            if message is not None and message.get("type") == "message":
                field, _, value = bytes(message["data"]).partition(b"=")
                self.apply(field, value)
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > PING_SECONDS:
                await self.redis.client.ping()
                quiet_since = time.monotonic()
