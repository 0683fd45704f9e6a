"""Identity providers, the accounts linked to them and their claim-mapping rules
(``control_plane.sso``). Registered with the other tables by ``control_plane.db.models``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from control_plane.db.models import _json_list, _ts, new_id


class IdentityProvider(SQLModel, table=True):
    """An external identity provider users sign in through (configured by platform admins)."""

    __tablename__ = "identity_provider"
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    #: The short name in URLs (``/ui/auth/sso/<slug>/start``) and on the login button's key.
    slug: str = Field(unique=True, index=True, max_length=40)
    #: Shown on the button: "Sign in with <display_name>".
    display_name: str = Field(max_length=100)
    #: The implementation's name in the ``orgplane.identity_providers`` entry-point group.
    kind: str = Field(default="oidc", max_length=40)
    #: The issuer's discovery document (``.../.well-known/openid-configuration``).
    discovery_url: str = Field(max_length=2000)
    client_id: str = Field(max_length=300)
    #: The client secret, encrypted with the deployment secret; never answered by the API.
    client_secret_enc: str = Field(default="", max_length=2000)
    scopes: list[str] = _json_list()
    #: Email domains whose users may sign in (lower case); empty: any domain.
    allowed_domains: list[str] = _json_list()
    #: Create an account on the first sign-in of someone unknown (just in time).
    jit: bool = True
    enabled: bool = True
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class IdentityLink(SQLModel, table=True):
    """A user's account at a provider: afterwards the user is found by (provider, subject)."""

    __tablename__ = "identity_link"
    __table_args__ = (
        UniqueConstraint("provider_id", "subject", name="uq_identity_link_provider_subject"),
    )
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    provider_id: str = Field(foreign_key="identity_provider.id", index=True, max_length=32)
    subject: str = Field(max_length=255)
    user_id: str = Field(foreign_key="user.id", index=True, max_length=32)
    created_at: datetime = _ts()
    last_login_at: datetime | None = _ts(nullable=True)


class ClaimRule(SQLModel, table=True):
    """A claim value that grants a membership: at each sign-in through the provider, a user
    whose claim at ``claim`` holds ``value`` is a ``role`` of ``org_id``."""

    __tablename__ = "claim_rule"
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    provider_id: str = Field(foreign_key="identity_provider.id", index=True, max_length=32)
    #: A dotted path into the claims (``groups``, ``org.department``) or ``email_domain``.
    claim: str = Field(max_length=200)
    value: str = Field(max_length=300)
    org_id: str = Field(foreign_key="org.id", index=True, max_length=32)
    role: str = Field(max_length=16)
    created_at: datetime = _ts()
