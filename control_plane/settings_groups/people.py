"""What people receive and read: email delivery and the platform's word for a tenant."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SecretStr

from control_plane.settings_groups.base import Group


class MailSettings(Group):
    """Email: SMTP delivery, password reset and email verification (docs/identity.md)."""

    smtp_host: str = Field(
        "",
        description="SMTP server mail is sent through; empty turns email off (password reset, "
        "email verification and sign-up then answer 403 `mail_not_configured`).",
    )
    smtp_port: int = Field(587, description="Port of the SMTP server.")
    smtp_tls: Literal["none", "starttls", "tls"] = Field(
        "starttls",
        description="`starttls` upgrades a plain connection (port 587), `tls` connects over TLS "
        "(port 465), `none` sends in clear text (a relay on the same host only).",
    )
    smtp_username: str = Field("", description="SMTP user name; empty sends without AUTH.")
    smtp_password: SecretStr = Field(SecretStr(""), description="SMTP password (never logged).")
    mail_from: str = Field(
        "orgplane <noreply@localhost>", description="From address of every message."
    )
    mail_max_attempts: int = Field(
        8, ge=1, description="Delivery attempts of a message before it is given up."
    )
    mail_retry_seconds: float = Field(
        30.0,
        gt=0,
        description="Wait before the second delivery attempt; it doubles on every failure, "
        "up to an hour.",
    )
    password_reset_ttl: int = Field(
        3600, ge=60, description="Seconds a password-reset link stays valid (used once)."
    )
    email_verification_ttl: int = Field(
        2 * 86400, ge=60, description="Seconds an email-verification link stays valid (used once)."
    )

    @property
    def enabled(self) -> bool:
        """Mail can be sent: an SMTP server is configured."""
        return bool(self.smtp_host)


_WORD = r"^[^\x00-\x1f<>&\"`]*$"  # plain words: no control characters, markup or backticks


def _word(default: str, description: str, *, required: bool = True) -> Any:
    """A field holding the platform's word for something (1-40 plain characters)."""
    return Field(
        default, min_length=int(required), max_length=40, pattern=_WORD, description=description
    )


class TenantSettings(Group):
    """The platform's word for the tenant unit: UI, emails, CLI output, API descriptions."""

    # API paths and field names keep `org` (`/api/v1/orgs`, `org_id`) whatever the word.

    tenant_singular: str = _word(
        "Organization", "Singular, capitalised as at the start of a sentence (`Workspace`)."
    )
    tenant_plural: str = _word(
        "Organizations", "Plural, capitalised as at the start of a sentence (`Workspaces`)."
    )
    tenant_placeholder: str = _word(
        "", "Placeholder of the create form's name field; empty: `<singular> name`.", required=False
    )
    tenant_column: str = _word(
        "", "Header of the column naming the tenant in tables; empty: the singular.", required=False
    )
