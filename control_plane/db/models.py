"""The control plane's tables (SQLModel). All state lives here or in Redis, never in memory.

Identifiers are opaque hex strings; timestamps are timezone-aware UTC. Secrets are stored only
as hashes (passwords, refresh tokens, invites, instance credentials) or encrypted (signing keys).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from control_plane.db.types import UTCDateTime


def new_id() -> str:
    """A new opaque identifier (32 hex characters)."""
    return uuid.uuid4().hex


def utcnow() -> datetime:
    """Now, in UTC, timezone-aware."""
    return datetime.now(UTC)


def _ts(*, nullable: bool = False, index: bool = False) -> Any:
    column: Column[datetime] = Column(UTCDateTime(), nullable=nullable, index=index)
    if nullable:
        return Field(default=None, sa_column=column)
    return Field(default_factory=utcnow, sa_column=column)


def _json() -> Any:
    return Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


def _json_list() -> Any:
    return Field(default_factory=list, sa_column=Column(JSON, nullable=False))


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


class Org(SQLModel, table=True):
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    slug: str = Field(unique=True, index=True, max_length=40)
    name: str = Field(max_length=200)
    plan: str = Field(default="free", index=True, max_length=40)
    parent_id: str | None = Field(default=None, foreign_key="org.id", index=True)
    #: Feature overrides of this org: {key: true|false}; inherited from the parent otherwise.
    features: dict[str, bool] = _json()
    #: Limit overrides of this org (see org_instance.contract.Limits).
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


class Backup(SQLModel, table=True):
    """A backup archive of an org's data, kept in the backup store (``control_plane.backups``).

    ``schedule_slot`` (``<org_id>:<interval number>``) is set on scheduled backups only; its
    unique index is the claim that keeps two replicas from taking the same one.
    """

    __table_args__ = (
        Index("ix_backup_org_created", "org_id", "created_at", "id"),
        UniqueConstraint("schedule_slot", name="uq_backup_schedule_slot"),
    )
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    org_id: str = Field(foreign_key="org.id", max_length=32)
    #: manual, scheduled, import, pre_restore or pre_upgrade (a rollout's, control_plane.fleet).
    kind: str = Field(max_length=16)
    #: running, ready or failed.
    status: str = Field(default="running", max_length=16)
    size_bytes: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    #: SHA-256 (hex) of the plaintext archive (the store keeps it encrypted, docs/backups.md).
    sha256: str = Field(default="", max_length=64)
    #: The archive's manifest without its per-file entries (see org_instance.backup.manifest).
    manifest: dict[str, Any] = _json()
    schedule_slot: str | None = Field(default=None, max_length=80)
    created_at: datetime = _ts()
    completed_at: datetime | None = _ts(nullable=True)
    #: The user id of who asked, or "scheduler".
    created_by: str = Field(default="", max_length=64)
    error: str = Field(default="", max_length=2000)


class BackupKey(SQLModel, table=True):
    """An org's backup data key, wrapped by the platform key (``control_plane.backups.keys``).

    Shredding empties ``wrapped_key`` and sets ``shredded_at``: every copy of the org's
    archives becomes unreadable. ``legal_hold`` (platform admins only) keeps a deleted org's
    backups past their retention and blocks the shred.
    """

    __tablename__ = "backup_key"
    org_id: str = Field(foreign_key="org.id", primary_key=True, max_length=32)
    #: ``<platform key id>:<base64 of the wrapped data key>``; "" once shredded or before the
    #: first backup of an org held without one.
    wrapped_key: str = Field(default="", max_length=200)
    created_at: datetime = _ts()
    shredded_at: datetime | None = _ts(nullable=True)
    legal_hold: bool = False
    legal_hold_reason: str = Field(default="", max_length=500)
    legal_hold_changed_at: datetime | None = _ts(nullable=True)


class WebhookEndpoint(SQLModel, table=True):
    """An operator's receiver of platform events (``control_plane.webhooks``). Its signing
    secret is kept encrypted (it must be read back to sign) and is shown once, at creation."""

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    url: str = Field(max_length=2000)
    #: The event types it receives (``control_plane.webhooks.events.EVENT_TYPES``).
    event_types: list[str] = _json_list()
    description: str = Field(default="", max_length=200)
    secret_enc: str = Field(max_length=500)
    created_by: str = Field(default="", max_length=32)
    created_at: datetime = _ts()


class WebhookEvent(SQLModel, table=True):
    """An event to deliver, written in the transaction of the change it reports (an outbox).
    The webhook worker fans it out to the endpoints subscribed when it is dispatched."""

    __table_args__ = (Index("ix_webhookevent_pending", "dispatched_at", "created_at"),)
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    type: str = Field(max_length=64)
    #: The JSON body sent, exactly as signed.
    body: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = _ts()
    dispatched_at: datetime | None = _ts(nullable=True)


class WebhookDelivery(SQLModel, table=True):
    """One event for one endpoint: ``pending`` (retried with backoff), ``succeeded`` or
    ``failed`` (every attempt spent). ``attempt_log`` keeps each attempt's time, HTTP status
    (null: no answer) and error. ``lease_owner``/``lease_until`` claim it for one replica."""

    __table_args__ = (
        Index("ix_webhookdelivery_due", "status", "next_attempt_at"),
        Index("ix_webhookdelivery_endpoint", "endpoint_id", "created_at"),
    )
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    endpoint_id: str = Field(foreign_key="webhookendpoint.id", max_length=32)
    event_id: str = Field(foreign_key="webhookevent.id", max_length=32)
    event_type: str = Field(max_length=64)
    status: str = Field(default="pending", max_length=16)
    attempts: int = 0
    next_attempt_at: datetime = _ts()
    lease_owner: str = Field(default="", max_length=64)
    lease_until: datetime | None = _ts(nullable=True)
    last_status_code: int | None = None
    last_error: str = Field(default="", max_length=500)
    attempt_log: list[dict[str, Any]] = _json_list()
    created_at: datetime = _ts()
    completed_at: datetime | None = _ts(nullable=True)


class OutboxMail(SQLModel, table=True):
    """A message waiting for (or done with) SMTP delivery (``control_plane.mail.outbox``).

    Requests only insert rows; a sender in every replica claims due rows with a lease
    (a conditional ``UPDATE``), so a message is handed to SMTP by one replica at a time. The
    message (it may carry a one-time link) is encrypted with the deployment secret and wiped
    once sent or given up.
    """

    __table_args__ = (Index("ix_outboxmail_due", "sent_at", "failed_at", "next_attempt_at"),)
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    kind: str = Field(max_length=32)
    recipient: str = Field(max_length=320)
    message_enc: str = Field(default="", sa_column=Column(Text, nullable=False))
    created_at: datetime = _ts()
    next_attempt_at: datetime = _ts()
    attempts: int = 0
    last_error: str = Field(default="", max_length=500)
    lease_owner: str = Field(default="", max_length=64)
    lease_expires_at: datetime | None = _ts(nullable=True)
    sent_at: datetime | None = _ts(nullable=True)
    failed_at: datetime | None = _ts(nullable=True)


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


# The fleet's and branding's tables live in their own modules; importing them here registers
# them with the rest.
from control_plane.db import branding_models as branding_models  # noqa: E402
from control_plane.db import fleet_models as fleet_models  # noqa: E402
