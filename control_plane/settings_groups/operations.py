"""Operating the platform: backups, instance logs, webhooks and security signals."""

from __future__ import annotations

from pydantic import Field, SecretStr

from control_plane.settings_groups.base import Group


class BackupSettings(Group):
    """Backups of org data: where archives are kept and how often they are taken."""

    backup_dir: str = Field(
        "",
        description="Directory (or mounted volume) of backup archives; empty means "
        "`<data_dir>/backups`.",
    )
    backup_interval: int = Field(
        0, description="Seconds between scheduled backups of each running org; 0 turns them off."
    )
    backup_keep: int = Field(7, description="Scheduled backups kept per org (older are deleted).")
    backup_max_bytes: int = Field(
        10 * 1024**3, description="Largest backup archive stored, downloaded from or imported."
    )
    backup_key: SecretStr = Field(
        SecretStr(""),
        description="Platform key that wraps each org's backup data key; empty means derived "
        "from ORGPLANE_SECRET_KEY. Changing it needs the old value in "
        "ORGPLANE_BACKUP_PREVIOUS_KEYS until `orgplane backups rewrap` has run.",
    )
    backup_previous_keys: SecretStr = Field(
        SecretStr(""),
        description="Comma-separated earlier platform keys (earlier ORGPLANE_BACKUP_KEY or "
        "ORGPLANE_SECRET_KEY values) that still unwrap data keys, during a rotation.",
    )
    backup_read_plaintext: bool = Field(
        False,
        description="Also read archives stored unencrypted before backups were encrypted "
        "(off: they count as missing).",
    )
    backup_retention_after_delete: int = Field(
        30 * 86400,
        ge=0,
        description="Seconds a deleted org's backups are kept; then they are deleted and its "
        "data key is shredded, unless the org is under legal hold.",
    )


class FleetSettings(Group):
    """Operating a fleet: instance logs, outgoing webhooks and security signals."""

    instance_logs_max_tail: int = Field(
        1000, ge=1, description="Most lines one read of an instance's log returns (`tail`)."
    )
    instance_logs_max_seconds: float = Field(
        300.0,
        gt=0,
        description="Longest one read of an instance's log stays open (a followed log ends then).",
    )
    webhook_allow_private: bool = Field(
        False,
        description="Let webhook endpoints resolve to private, loopback or link-local addresses "
        "(off: refused, so a webhook cannot reach the platform's own network).",
    )
    webhook_max_attempts: int = Field(
        8, ge=1, description="Deliveries of one webhook event tried before it is marked failed."
    )
    webhook_retry_seconds: float = Field(
        10.0,
        gt=0,
        description="Wait before the first retry of a failed delivery; each later one waits "
        "twice as long (at most an hour).",
    )
    security_signal_threshold: int = Field(
        20,
        ge=1,
        description="Refused token exchanges or forged tokens from one address, or for one "
        "user, within the window that raise a `security.signal` webhook event.",
    )
    security_signal_window: int = Field(
        300, ge=1, description="Window (s) of `ORGPLANE_SECURITY_SIGNAL_THRESHOLD`."
    )
