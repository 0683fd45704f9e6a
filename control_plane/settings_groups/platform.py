"""How the control plane process runs: server, database and Redis."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from control_plane.settings_groups.base import Group


class ServerSettings(Group):
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
        Path(".orgplane"),
        description="Directory for the embedded database, keys and org data; embedded mode "
        "keeps it 0700 and its database, keys and logs 0600.",
    )
    max_body_bytes: int = Field(
        1_048_576, description="Largest request body accepted (413 above it)."
    )
    keep_alive_timeout: int = Field(
        120,
        gt=0,
        description="Seconds an idle keep-alive connection stays open. Keep it longer than the "
        "idle timeout of every proxy and client in front (Traefik's is 90 s): a connection the "
        "server closes just as a client reuses it fails that client's request.",
    )
    log_format: Literal["console", "json"] = Field(
        "console", description="`console` for people, `json` for log collectors."
    )
    log_level: str = Field("INFO", description="Minimum log level.")
    metrics_token: SecretStr = Field(
        SecretStr(""),
        description="Bearer token Prometheus presents to the control plane's `GET /metrics`; "
        "empty refuses every scrape.",
    )

    @property
    def base_url(self) -> str:
        """The URL clients and org instances use to reach the control plane."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


class DatabaseSettings(Group):
    """The control plane's database."""

    database_url: str = Field(
        "",
        description="SQLAlchemy async URL; empty means SQLite in the data directory. "
        "Use `postgresql+asyncpg://...` for several replicas.",
    )
    database_echo: bool = Field(False, description="Log every SQL statement (debugging only).")
    database_pool_size: int = Field(
        10,
        ge=1,
        description="Most PostgreSQL connections each control-plane process opens (and keeps). "
        "There is no overflow beyond them: a request that finds all in use waits for one, first "
        "come first served (a connection opened for a burst and closed after it costs more than "
        "the wait). The reconciler uses up to `max_concurrent_provisioning` of them at a time.",
    )
    database_pool_timeout: float = Field(
        10.0,
        gt=0,
        description="Seconds a request waits for a free PostgreSQL connection before it is "
        "answered 503 `database_unavailable`.",
    )


class StoreSettings(Group):
    """Redis, for ephemeral state shared by replicas."""

    redis_url: str = Field(
        "", description="Redis URL of the control plane (admin user); empty means memory stores."
    )
    redis_org_users: bool = Field(
        True,
        description="With a Redis URL, give each org its own Redis ACL user confined to its "
        "namespace (the control plane's Redis user needs ACL rights).",
    )
    instance_redis_host: str = Field(
        "", description="Host org instances reach Redis at; empty means the control plane's."
    )
