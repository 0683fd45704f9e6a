"""Identity tables: users, their sign-ins, tokens, second factors, and OAuth clients and codes;
and the signing keys. Registered with the other tables by ``control_plane.db.models``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from control_plane.db.columns import _json, _json_list, _ts, new_id


class User(SQLModel, table=True):
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    email: str = Field(unique=True, index=True, max_length=320)
    name: str = Field(default="", max_length=200)
    password_hash: str = Field(max_length=300)
    is_platform_admin: bool = False
    disabled: bool = False
    #: Bumped by a password change: access tokens carry it (``sv``) and older ones stop working.
    session_version: int = 1
    #: When the user proved the email is theirs (a verification or reset link); accounts made
    #: by a platform admin or at bootstrap are verified when made. None: not verified yet.
    email_verified_at: datetime | None = _ts(nullable=True)
    #: The TOTP secret (RFC 6238), encrypted with the deployment secret; "" without one. It is
    #: a second factor only once confirmed (``totp_enabled_at``): control_plane/identity/mfa.py.
    totp_secret_enc: str = Field(default="", max_length=500)
    totp_enabled_at: datetime | None = _ts(nullable=True)
    #: The last TOTP time step accepted: a code is usable once (replays are refused).
    totp_last_step: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class SigningKey(SQLModel, table=True):
    """A JWS signing key. Published from ``created_at``, signs from ``active_from``."""

    kid: str = Field(primary_key=True, max_length=64)
    alg: str = Field(max_length=16)
    private_key_enc: str = Field(max_length=4000)
    public_jwk: dict[str, Any] = _json()
    created_at: datetime = _ts()
    active_from: datetime = _ts()
    #: Stops signing from this moment (set on rotation).
    retire_after: datetime | None = _ts(nullable=True)
    #: Leaves the JWKS from this moment (every token it signed has expired).
    expires_at: datetime | None = _ts(nullable=True)


class RefreshToken(SQLModel, table=True):
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    family_id: str = Field(index=True, max_length=32)
    user_id: str = Field(foreign_key="user.id", index=True)
    token_hash: str = Field(unique=True, max_length=64)
    parent_id: str | None = Field(default=None, max_length=32)
    created_at: datetime = _ts()
    expires_at: datetime = _ts()
    used_at: datetime | None = _ts(nullable=True)
    revoked_at: datetime | None = _ts(nullable=True)
    #: How the sign-in of this family was authenticated (RFC 8176 ``amr``, space-separated):
    #: refreshed access tokens carry it on.
    amr: str = Field(default="pwd", max_length=40)


class EmailToken(SQLModel, table=True):
    """A one-time link sent by email: ``reset`` (password) or ``verify`` (an email address).

    Stored as a SHA-256 hash; spent by a conditional ``UPDATE ... WHERE used_at IS NULL``.
    ``email`` is the address the link was sent to (for ``verify``, the address it confirms).
    """

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    user_id: str = Field(foreign_key="user.id", index=True, max_length=32)
    purpose: str = Field(max_length=16)
    email: str = Field(max_length=320)
    token_hash: str = Field(unique=True, max_length=64)
    created_at: datetime = _ts()
    expires_at: datetime = _ts()
    used_at: datetime | None = _ts(nullable=True)


class UserDevice(SQLModel, table=True):
    """A device a user signed in from: user agent and IP network (a /24 or /64), hashed."""

    __table_args__ = (UniqueConstraint("user_id", "fingerprint", name="uq_userdevice_user_fp"),)
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    user_id: str = Field(foreign_key="user.id", index=True, max_length=32)
    fingerprint: str = Field(max_length=64)
    user_agent: str = Field(default="", max_length=300)
    network: str = Field(default="", max_length=64)
    first_seen_at: datetime = _ts()


class PersonalToken(SQLModel, table=True):
    """A personal access token (``opat_…``) a user made for scripts: named, limited to some
    orgs and scopes, expiring; stored as a SHA-256 hash (control_plane.tokens.personal_tokens).
    """

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    user_id: str = Field(foreign_key="user.id", index=True, max_length=32)
    name: str = Field(max_length=100)
    token_hash: str = Field(unique=True, max_length=64)
    #: Scopes the token may carry into an org token (a subset of the role scopes).
    scopes: list[str] = _json_list()
    #: True: every org the user is a member of, now or later; else only ``org_ids``.
    all_orgs: bool = False
    org_ids: list[str] = _json_list()
    created_at: datetime = _ts()
    expires_at: datetime = _ts()
    last_used_at: datetime | None = _ts(nullable=True)
    revoked_at: datetime | None = _ts(nullable=True)
    #: ``amr`` of the session the token was made in: "pwd otp" lets it enter orgs that
    #: require MFA (docs/identity.md).
    amr: str = Field(default="pwd", max_length=40)


class RecoveryCode(SQLModel, table=True):
    """A single-use MFA recovery code, stored as a SHA-256 hash bound to its user."""

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    user_id: str = Field(foreign_key="user.id", index=True, max_length=32)
    code_hash: str = Field(unique=True, max_length=64)
    created_at: datetime = _ts()
    used_at: datetime | None = _ts(nullable=True)


class OAuthClient(SQLModel, table=True):
    """A client registered by a platform admin for the authorization-code flow
    (control_plane.oidc): confidential clients authenticate with a secret stored as a SHA-256
    hash; public ones with PKCE alone. Redirect URIs are matched exactly."""

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=100)
    #: ``confidential`` or ``public``.
    client_type: str = Field(max_length=20)
    secret_hash: str = Field(default="", max_length=64)
    redirect_uris: list[str] = _json_list()
    #: First-party clients (the platform's own) skip the consent page.
    first_party: bool = False
    scopes: list[str] = _json_list()
    created_by: str = Field(default="", max_length=32)
    created_at: datetime = _ts()


class AuthorizationCode(SQLModel, table=True):
    """A single-use authorization code, stored as a SHA-256 hash and bound to its client,
    redirect URI and PKCE challenge; ``issued_jti`` names the access token it bought, which a
    replay of the code revokes."""

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    code_hash: str = Field(unique=True, max_length=64)
    client_id: str = Field(max_length=64, index=True)
    user_id: str = Field(foreign_key="user.id", index=True, max_length=32)
    redirect_uri: str = Field(max_length=2000)
    scope: str = Field(max_length=500)
    nonce: str = Field(default="", max_length=500)
    code_challenge: str = Field(max_length=128)
    #: The sign-in (refresh-token family) and how it was authenticated (``amr``).
    session_id: str = Field(default="", max_length=32)
    amr: str = Field(default="pwd", max_length=40)
    #: The user's ``session_version`` at approval: a password change in between voids the code.
    session_version: int = 1
    auth_time: datetime = _ts()
    created_at: datetime = _ts()
    expires_at: datetime = _ts()
    used_at: datetime | None = _ts(nullable=True)
    issued_jti: str = Field(default="", max_length=64)
    issued_exp: int = 0
