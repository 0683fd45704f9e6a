"""The control plane's tables (SQLModel). All state lives here or in Redis, never in memory.

Identifiers are opaque hex strings; timestamps are timezone-aware UTC. Secrets are stored only
as hashes (passwords, refresh tokens, invites, instance credentials) or encrypted (signing keys).

Orgs, their members, instances, domains, features and usage are defined here; the identity
tables (``identity_models``), the operations tables (``operations_models``: backups, webhooks,
mail), the fleet's and branding's have their own modules. Every table is importable from here
(``from control_plane.db.models import User``), and importing this module registers them all
with ``SQLModel.metadata`` (what Alembic compares the migrations with).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from control_plane.db.columns import _json as _json
from control_plane.db.columns import _json_list as _json_list
from control_plane.db.columns import _ts as _ts
from control_plane.db.columns import new_id as new_id
from control_plane.db.columns import utcnow as utcnow
from control_plane.db.identity_models import AuthorizationCode as AuthorizationCode
from control_plane.db.identity_models import EmailToken as EmailToken
from control_plane.db.identity_models import OAuthClient as OAuthClient
from control_plane.db.identity_models import PersonalToken as PersonalToken
from control_plane.db.identity_models import RecoveryCode as RecoveryCode
from control_plane.db.identity_models import RefreshToken as RefreshToken
from control_plane.db.identity_models import SigningKey as SigningKey
from control_plane.db.identity_models import User as User
from control_plane.db.identity_models import UserDevice as UserDevice
from control_plane.db.operations_models import Backup as Backup
from control_plane.db.operations_models import BackupKey as BackupKey
from control_plane.db.operations_models import OutboxMail as OutboxMail
from control_plane.db.operations_models import WebhookDelivery as WebhookDelivery
from control_plane.db.operations_models import WebhookEndpoint as WebhookEndpoint
from control_plane.db.operations_models import WebhookEvent as WebhookEvent


class Org(SQLModel, table=True):
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    slug: str = Field(unique=True, index=True, max_length=40)
    name: str = Field(max_length=200)
    plan: str = Field(default="free", index=True, max_length=40)
    parent_id: str | None = Field(default=None, foreign_key="org.id", index=True)
    #: Feature overrides of this org: {key: true|false}; inherited from the parent otherwise.
    features: dict[str, bool] = _json()
    #: Limit overrides of this org (see orgplane_wire.contract.Limits).
    limits: dict[str, int] = _json()
    desired_state: str = Field(default="running", max_length=16)
    phase: str = Field(default="pending", index=True, max_length=16)
    reason: str = Field(default="", max_length=500)
    suspended: bool = False
    deletion_locked: bool = False
    delete_after: datetime | None = _ts(nullable=True)
    require_access_approval: bool = False
    #: Members (and staff) enter the org only with a sign-in that used a second factor.
    require_mfa: bool = False
    #: Members sign in only through an identity provider (control_plane/sso/require.py).
    require_sso: bool = False
    #: Bumped on every change an instance must pick up (limits, features, plan).
    config_version: int = 1
    #: Bumped on every change of desired state; the reconciler records what it observed.
    generation: int = 1
    created_at: datetime = _ts()
    updated_at: datetime = _ts(index=True)
    deleted_at: datetime | None = _ts(nullable=True)
    #: Set while the org is hibernated (instance stopped for idleness, data kept); cleared by
    #: the first request, which sets ``woken_at`` (see control_plane/routing/hibernation.py).
    hibernated_at: datetime | None = _ts(nullable=True)
    woken_at: datetime | None = _ts(nullable=True)


class Membership(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("user_id", "org_id", name="uq_membership_user_org"),)
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    user_id: str = Field(foreign_key="user.id", index=True)
    org_id: str = Field(foreign_key="org.id", index=True)
    role: str = Field(max_length=16)
    created_at: datetime = _ts()
    #: The org whose admin membership this one was made from (an org created under a parent
    #: gets its creator as owner): it ends when the user stops being an admin there.
    via_org_id: str | None = Field(default=None, foreign_key="org.id", index=True)
    #: Who manages the membership: "" when granted in orgplane (invite, admin, creator),
    #: ``idp:<provider id>`` when an identity provider's claim rules do (control_plane/sso).
    source: str = Field(default="", max_length=40)


class Invite(SQLModel, table=True):
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    org_id: str = Field(foreign_key="org.id", index=True)
    email: str = Field(index=True, max_length=320)
    role: str = Field(max_length=16)
    token_hash: str = Field(unique=True, max_length=64)
    invited_by: str = Field(foreign_key="user.id")
    created_at: datetime = _ts()
    expires_at: datetime = _ts()
    accepted_at: datetime | None = _ts(nullable=True)
    revoked_at: datetime | None = _ts(nullable=True)


class Instance(SQLModel, table=True):
    """What the reconciler knows about an org's instance; health is kept apart from phase."""

    org_id: str = Field(foreign_key="org.id", primary_key=True, max_length=32)
    instance_id: str = Field(default_factory=new_id, max_length=32)
    provisioner: str = Field(max_length=40)
    handle: dict[str, Any] = _json()
    endpoint: str = Field(default="", max_length=300)
    phase: str = Field(default="pending", max_length=16)
    health: str = Field(default="unknown", max_length=16)
    reason: str = Field(default="", max_length=1000)
    #: The image last applied (what runs).
    image: str = Field(default="", max_length=300)
    #: The org's own image, chosen by a platform admin (``redeploy`` with ``image``): it
    #: outranks its plan's image and the default (see ``control_plane/orgs/images.py``).
    pinned_image: str = Field(default="", max_length=300)
    version: str = Field(default="", max_length=64)
    #: The image a rollout moved the org to (``control_plane.fleet``): below ``pinned_image``,
    #: above the plan's image and the default.
    assigned_image: str = Field(default="", max_length=300)
    #: The contract version negotiated at the last written heartbeat; None before the first.
    contract_version: int | None = None
    credential_hash: str = Field(default="", max_length=64)
    #: The credential and Redis URL encrypted with the deployment secret: the reconciler rebuilds
    #: the same spec on every pass, so ``apply`` stays idempotent.
    credential_enc: str = Field(default="", max_length=1000)
    redis_url_enc: str = Field(default="", max_length=1000)
    checked_at: datetime | None = _ts(nullable=True)
    last_heartbeat_at: datetime | None = _ts(nullable=True)
    last_heartbeat_seq: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    #: Usage counters of the last heartbeat written and the run they belong to
    #: (``{"run": ..., "counters": {...}}``): the baseline of the next usage deltas.
    usage_reported: dict[str, Any] = _json()
    started_at: datetime | None = _ts(nullable=True)
    #: When a heartbeat last showed the request counter moving (or a run started): the idle
    #: clock of hibernation; indexed for the reconciler's "due for hibernation" query.
    last_active_at: datetime | None = _ts(nullable=True, index=True)
    generation: int = 0
    observed_generation: int = 0
    attempts: int = 0
    next_attempt_at: datetime | None = _ts(nullable=True)
    last_error: str = Field(default="", max_length=2000)
    lease_owner: str = Field(default="", max_length=64)
    lease_expires_at: datetime | None = _ts(nullable=True)
    updated_at: datetime = _ts()


class InstanceEvent(SQLModel, table=True):
    """The timeline of an org's instance (shown by the API and the UI)."""

    __table_args__ = (Index("ix_instanceevent_org_at", "org_id", "at"),)
    id: int | None = Field(default=None, primary_key=True)
    org_id: str = Field(max_length=32)
    at: datetime = _ts()
    kind: str = Field(max_length=40)
    message: str = Field(default="", max_length=2000)


class Domain(SQLModel, table=True):
    """A hostname an org answers at, or claims. Several orgs may hold pending claims on one
    hostname; only one row per hostname is ever verified (the partial unique index)."""

    __table_args__ = (
        Index(
            "uq_domain_verified_hostname",
            "hostname",
            unique=True,
            sqlite_where=text("verified"),
            postgresql_where=text("verified"),
        ),
        UniqueConstraint("org_id", "hostname", name="uq_domain_org_hostname"),
    )
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    hostname: str = Field(index=True, max_length=253)
    org_id: str = Field(foreign_key="org.id", index=True)
    kind: str = Field(default="custom", max_length=16)
    verified: bool = False
    verification_token: str = Field(default="", max_length=64)
    created_at: datetime = _ts()
    verified_at: datetime | None = _ts(nullable=True)
    last_checked_at: datetime | None = _ts(nullable=True)
    #: When a pending claim expires (``domain_claim_ttl_hours`` after it was added or lost its
    #: verification); None while verified and for subdomains.
    claim_expires_at: datetime | None = _ts(nullable=True)


class AccessRequest(SQLModel, table=True):
    """A staff member's request for support access to an org that requires approval."""

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    org_id: str = Field(foreign_key="org.id", index=True)
    staff_user_id: str = Field(foreign_key="user.id", index=True)
    reason: str = Field(max_length=500)
    status: str = Field(default="pending", max_length=16)
    decided_by: str | None = Field(default=None, max_length=32)
    created_at: datetime = _ts()
    decided_at: datetime | None = _ts(nullable=True)
    expires_at: datetime | None = _ts(nullable=True)


class AuditEvent(SQLModel, table=True):
    """Append-only: rows are inserted, never updated or deleted by the application."""

    __table_args__ = (Index("ix_auditevent_org_at", "org_id", "at"),)
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _ts(index=True)
    action: str = Field(index=True, max_length=64)
    outcome: str = Field(default="success", max_length=16)
    actor_id: str | None = Field(default=None, index=True, max_length=32)
    actor_email: str = Field(default="", max_length=320)
    org_id: str | None = Field(default=None, max_length=32)
    target_type: str = Field(default="", max_length=32)
    target_id: str = Field(default="", max_length=64)
    ip: str = Field(default="", max_length=64)
    detail: dict[str, Any] = _json()


class Feature(SQLModel, table=True):
    """A catalogue feature and its access rules (see ``control_plane.features.rules``)."""

    key: str = Field(primary_key=True, max_length=40)
    description: str = Field(default="", max_length=500)
    #: Off for everyone, whatever the other rules say.
    disabled: bool = False
    exclusive_user_ids: list[str] = _json_list()
    exclusive_org_ids: list[str] = _json_list()
    #: Plans that include the feature; empty: the built-in plan catalogue decides.
    plans: list[str] = _json_list()
    default: bool = False
    updated_at: datetime = _ts()


class PlanImage(SQLModel, table=True):
    """The instance image of a plan's orgs (platform admins set it); no row: the default."""

    plan: str = Field(primary_key=True, max_length=40)
    image: str = Field(max_length=300)
    updated_at: datetime = _ts()


class UsageSample(SQLModel, table=True):
    """Per-org usage in a time bucket (deltas of the instance's counters)."""

    __table_args__ = (UniqueConstraint("org_id", "bucket", name="uq_usage_org_bucket"),)
    id: int | None = Field(default=None, primary_key=True)
    org_id: str = Field(max_length=32, index=True)
    bucket: datetime = _ts()
    requests: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    sessions: int = 0
    messages: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    active_users: int = 0
    storage_bytes: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))


class Spare(SQLModel, table=True):
    """A warm-pool instance started before its org exists; ``id`` is the org id it will take.

    ``state``: ``warming`` (started, not answering yet), ``ready`` (may be claimed),
    ``claimed`` (an org with this id exists and is being assigned to it), ``failed``.
    """

    __table_args__ = (Index("ix_spare_provisioner_state", "provisioner", "state"),)
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    provisioner: str = Field(max_length=40)
    state: str = Field(default="warming", max_length=16)
    endpoint: str = Field(default="", max_length=300)
    handle: dict[str, Any] = _json()
    #: The secret the spare takes its assignment with, encrypted with the deployment secret.
    pool_secret_enc: str = Field(default="", max_length=1000)
    created_at: datetime = _ts()
    ready_at: datetime | None = _ts(nullable=True)


class PoolLease(SQLModel, table=True):
    """Who maintains a backend's warm pool right now (one replica at a time)."""

    key: str = Field(primary_key=True, max_length=64)
    owner: str = Field(default="", max_length=64)
    expires_at: datetime | None = _ts(nullable=True)


# The fleet's, branding's, passkeys' and SSO's tables live in their own modules; importing
# them here registers them with the rest.
from control_plane.db import branding_models as branding_models  # noqa: E402
from control_plane.db import fleet_models as fleet_models  # noqa: E402
from control_plane.db import passkey_models as passkey_models  # noqa: E402
from control_plane.db import sso_models as sso_models  # noqa: E402
