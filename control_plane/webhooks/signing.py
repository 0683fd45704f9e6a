"""Standard Webhooks signatures (https://www.standardwebhooks.com/), made with ``hmac``.

A secret is ``whsec_`` + base64 of 32 random bytes. A delivery carries ``webhook-id`` (the same
on every retry of one message), ``webhook-timestamp`` (Unix seconds of this attempt) and
``webhook-signature``: ``v1,`` + base64 of HMAC-SHA256 under the secret's bytes over
``{id}.{timestamp}.{body}``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Final

SECRET_PREFIX: Final = "whsec_"


def new_secret() -> str:
    """A new endpoint secret."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def signature(secret: str, *, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value of ``body``."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signed_headers(secret: str, *, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The headers of one delivery attempt."""
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, msg_id=msg_id, timestamp=timestamp, body=body),
    }
