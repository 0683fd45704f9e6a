"""Passkeys (WebAuthn credentials) and the challenges of their ceremonies
(``control_plane.identity.passkeys``). Registered with the other tables by
``control_plane.db.models``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column
from sqlmodel import Field, SQLModel

from control_plane.db.models import _ts, new_id


class Passkey(SQLModel, table=True):
    """A user's WebAuthn credential: a second factor beside TOTP."""

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    user_id: str = Field(foreign_key="user.id", index=True, max_length=32)
    #: The credential ID the authenticator chose, base64url (at most 1023 bytes, WebAuthn §5.8.3).
    credential_id: str = Field(unique=True, max_length=1400)
    #: The COSE public key, base64url: public, so stored as is.
    public_key: str = Field(max_length=2000)
    #: The authenticator's signature counter at its last use: a lower one means a clone.
    sign_count: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    #: The transports the browser reported (``usb``, ``internal``...), space-separated.
    transports: str = Field(default="", max_length=200)
    name: str = Field(max_length=100)
    created_at: datetime = _ts()
    last_used_at: datetime | None = _ts(nullable=True)


class PasskeyChallenge(SQLModel, table=True):
    """A WebAuthn challenge handed out and not yet spent, stored as a SHA-256 hash, bound to
    its user, its ceremony (``register`` or ``login``) and the session (or pending sign-in)
    that asked for it; deleted when spent, so it is used at most once."""

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    challenge_hash: str = Field(unique=True, max_length=64)
    user_id: str = Field(foreign_key="user.id", index=True, max_length=32)
    purpose: str = Field(max_length=16)
    binding: str = Field(max_length=64)
    expires_at: datetime = _ts()
