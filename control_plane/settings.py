"""Typed settings, grouped by concern, read from ``ORGPLANE_*`` environment variables.

Every field has a description; ``orgplane config docs`` renders them into
``docs/configuration.md`` and a test keeps the two in step.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

_PREFIX = "ORGPLANE_"


class _Group(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=_PREFIX, extra="ignore", frozen=True)


class ServerSettings(_Group):
    """How the control plane runs and where it is reached."""

    mode: Literal["embedded", "production"] = Field(
        "embedded",
        description="`embedded` migrates on start and creates a secret key; `production` refuses "
        "to start on an unmigrated database and requires ORGPLANE_SECRET_KEY.",
    )
    host: str = Field("127.0.0.1", description="Address the control plane binds to.")
    port: int = Field(8080, description="Port the control plane binds to.")
    public_url: str = Field(
        "", description="External base URL of the control plane; defaults to http://host:port."
    )
    data_dir: Path = Field(
        Path(".orgplane"), description="Directory for the embedded database, keys and org data."
    )
    max_body_bytes: int = Field(
        1_048_576, description="Largest request body accepted (413 above it)."
    )
    log_format: Literal["console", "json"] = Field(
        "console", description="`console` for people, `json` for log collectors."
    )
    log_level: str = Field("INFO", description="Minimum log level.")

    @property
    def base_url(self) -> str:
        """The URL clients and org instances use to reach the control plane."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


class DatabaseSettings(_Group):
    """The control plane's database."""

    database_url: str = Field(
        "",
        description="SQLAlchemy async URL; empty means SQLite in the data directory. "
        "Use `postgresql+asyncpg://...` for several replicas.",
    )
    database_echo: bool = Field(False, description="Log every SQL statement (debugging only).")


class SecuritySettings(_Group):
    """Secrets, sessions and sign-up."""

    secret_key: SecretStr = Field(
        SecretStr(""),
        description="Deployment secret that encrypts signing keys at rest. Required in "
        "production; embedded mode creates one in the data directory (mode 0600).",
    )
    allow_signup: bool = Field(False, description="Let anyone create an account.")
    login_rate_limit: int = Field(
        10, description="Login attempts allowed per IP and per email within the window."
    )
    login_rate_window: int = Field(300, description="Login rate-limit window in seconds.")
    invite_ttl_days: int = Field(7, description="Days an invite stays valid.")
    deletion_grace_seconds: int = Field(
        300, description="Pending-deletion window before an org's instance and data are removed."
    )
    admin_email: str = Field("", description="Email of a platform admin created on first start.")
    admin_password: SecretStr = Field(
        SecretStr(""), description="Password of the platform admin created on first start."
    )
    cookie_secure: bool = Field(
        False, description="Mark the session cookie Secure (turn on behind HTTPS)."
    )


class TokenSettings(_Group):
    """Signing keys and token lifetimes."""

    signing_alg: Literal["ES256", "EdDSA"] = Field("ES256", description="Algorithm of new keys.")
    access_token_ttl: int = Field(900, description="Control-plane access token lifetime (s).")
    org_token_ttl: int = Field(300, description="Org token lifetime (s).")
    refresh_token_ttl: int = Field(30 * 86400, description="Refresh token lifetime (s).")
    jwks_cache_seconds: int = Field(300, description="Cache-Control max-age of the JWKS.")
    key_rotation_days: int = Field(
        30, description="Rotate the signing key automatically once it is this old (0: never)."
    )


class StoreSettings(_Group):
    """Redis, for ephemeral state shared by replicas."""

    redis_url: str = Field(
        "", description="Redis URL of the control plane (admin user); empty means memory stores."
    )


class ProvisioningSettings(_Group):
    """How org instances are provisioned."""

    provisioner: str = Field(
        "local", description="Provisioner backend: an entry point in `orgplane.provisioners`."
    )
    base_domain: str = Field(
        "localhost", description="Orgs are reached at `{slug}.{base_domain}`."
    )
    instance_image: str = Field(
        "orgplane-instance:latest", description="Image of org instances (docker, kubernetes)."
    )
    reconcile_interval: float = Field(5.0, description="Seconds between reconciler passes.")
    max_concurrent_provisioning: int = Field(
        4, description="Provisioning operations at once; more wait in a queue."
    )
    heartbeat_interval: float = Field(
        10.0, description="Seconds between org instance heartbeats."
    )


class Settings:
    """All settings groups, read once from the environment."""

    def __init__(self) -> None:
        self.server = ServerSettings()
        self.db = DatabaseSettings()
        self.security = SecuritySettings()
        self.tokens = TokenSettings()
        self.store = StoreSettings()
        self.provisioning = ProvisioningSettings()

    @property
    def groups(self) -> dict[str, BaseSettings]:
        """Each group by name, for generated documentation."""
        return {
            "server": self.server,
            "database": self.db,
            "security": self.security,
            "tokens": self.tokens,
            "store": self.store,
            "provisioning": self.provisioning,
        }

    @property
    def database_url(self) -> str:
        """The effective database URL."""
        if self.db.database_url:
            return self.db.database_url
        return f"sqlite+aiosqlite:///{self.server.data_dir.resolve() / 'orgplane.db'}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings (cached; tests build their own ``Settings``)."""
    return Settings()


GROUP_CLASSES: tuple[type[_Group], ...] = (
    ServerSettings,
    DatabaseSettings,
    SecuritySettings,
    TokenSettings,
    StoreSettings,
    ProvisioningSettings,
)


def render_docs() -> str:
    """Markdown reference of every setting, generated from the classes above."""
    lines = [
        "# Configuration",
        "",
        "Generated by `orgplane config docs` from `control_plane/settings.py`; a test keeps this",
        "file in step with the code. Every setting is an environment variable.",
        "",
    ]
    for cls in GROUP_CLASSES:
        lines += [f"## {cls.__doc__}", "", "| variable | default | meaning |", "|---|---|---|"]
        for name, field in cls.model_fields.items():
            default = field.default
            if isinstance(default, SecretStr):
                default = ""
            shown = f"`{default}`" if default not in ("", None) else "(empty)"
            lines.append(f"| `{_PREFIX}{name.upper()}` | {shown} | {field.description} |")
        lines.append("")
    return "\n".join(lines)
