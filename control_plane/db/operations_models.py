"""Operations tables: backups and their keys, outgoing webhooks and the mail outbox.
Registered with the other tables by ``control_plane.db.models``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from control_plane.db.columns import _json, _json_list, _ts, new_id


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
    #: The archive's manifest without its per-file entries (see orgplane_wire.backup.manifest).
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
