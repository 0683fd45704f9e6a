"""Typed settings, grouped by concern, read from ``ORGPLANE_*`` environment variables.

Every field has a description; ``orgplane config docs`` renders them into
``docs/configuration.md`` and a test keeps the two in step.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from control_plane.contract.declarations import declared_versions, split_entry

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


class DatabaseSettings(_Group):
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


class SecuritySettings(_Group):
    """Secrets, sessions and sign-up."""

    secret_key: SecretStr = Field(
        SecretStr(""),
        description="Deployment secret that encrypts signing keys at rest. Required in "
        "production; embedded mode creates one in the data directory (mode 0600).",
    )
    allow_signup: bool = Field(False, description="Let anyone create an account.")
    login_rate_limit: int = Field(
        10,
        ge=1,
        description="Failed login attempts allowed per email from one client IP within the "
        "window (a success clears them).",
    )
    login_rate_limit_ip: int = Field(
        100,
        ge=1,
        description="Failed login attempts allowed from one client IP, whatever the emails, "
        "within the window (password spraying).",
    )
    login_rate_limit_account: int = Field(
        100,
        ge=1,
        description="Failed login attempts allowed per email from all client IPs together "
        "within the window (a distributed attack); keep it well above `login_rate_limit` so "
        "one client cannot lock an account out for everyone.",
    )
    login_rate_window: int = Field(300, ge=1, description="Login rate-limit window in seconds.")
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Networks (CIDRs, as a JSON list) of the reverse proxies in front of the "
        "control plane, such as Traefik's. Only a request whose peer is in one of them has its "
        "client IP taken from `X-Forwarded-For` (the rightmost address not in these "
        "networks); otherwise the peer address is the client IP. Empty: never trust the "
        "header.",
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            ipaddress.ip_network(network, strict=False)  # ValueError names the bad entry
        return value

    invite_ttl_days: int = Field(7, description="Days an invite stays valid.")
    deletion_grace_seconds: int = Field(
        300, description="Pending-deletion window before an org's instance and data are removed."
    )
    admin_email: str = Field("", description="Email of a platform admin created on first start.")
    admin_password: SecretStr = Field(
        SecretStr(""), description="Password of the platform admin created on first start."
    )
    cookie_secure: bool = Field(
        False,
        description="Mark the UI's cookies Secure even when the public URL is http (they are "
        "Secure anyway when ORGPLANE_PUBLIC_URL is https or the request came over HTTPS).",
    )
    passkey_rp_id: str = Field(
        "",
        description="WebAuthn relying-party ID of passkeys: a domain, the public URL's host or "
        "a parent domain of it; empty means the public URL's host. Passkeys are bound to it "
        "(changing it orphans every registered passkey), and a browser refuses an IP address.",
    )
    passkey_user_verification: Literal["required", "preferred", "discouraged"] = Field(
        "preferred",
        description="Whether a passkey must verify its user (PIN, biometrics): `required` "
        "refuses an assertion without the UV flag; `preferred` and `discouraged` only ask.",
    )


class TokenSettings(_Group):
    """Signing keys and token lifetimes."""

    signing_alg: Literal["ES256", "EdDSA"] = Field("ES256", description="Algorithm of new keys.")
    access_token_ttl: int = Field(900, description="Control-plane access token lifetime (s).")
    org_token_ttl: int = Field(300, description="Org token lifetime (s).")
    refresh_token_ttl: int = Field(30 * 86400, description="Refresh token lifetime (s).")
    personal_token_max_days: int = Field(
        366,
        ge=1,
        le=36_500,
        description="The longest lifetime (days) a personal access token may be given; every "
        "token must expire.",
    )
    jwks_cache_seconds: int = Field(300, description="Cache-Control max-age of the JWKS.")
    key_rotation_days: int = Field(
        30, description="Rotate the signing key automatically once it is this old (0: never)."
    )
    access_approval_ttl: int = Field(
        3600,
        description="Seconds an approved staff access request lets its staff member into the "
        "org (orgs that require approval).",
    )


class StoreSettings(_Group):
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


class ProvisioningSettings(_Group):
    """How org instances are provisioned."""

    provisioner: str = Field(
        "local", description="Provisioner backend: an entry point in `orgplane.provisioners`."
    )
    base_domain: str = Field("localhost", description="Orgs are reached at `{slug}.{base_domain}`.")
    instance_image: str = Field(
        "orgplane-instance:latest", description="Image of org instances (docker, kubernetes)."
    )
    allowed_images: list[str] = Field(
        default_factory=list,
        description="Images platform admins may give an org or a plan, as a JSON list: a "
        "repository (any tag of it) or `repository@sha256:<digest>` (that digest only), "
        "optionally followed by the org-instance contract versions its images speak, "
        "`;contract=1,2` (none: version 1; an image that speaks no version this control plane "
        "supports is refused). The repository of `instance_image` is always allowed; tenants "
        "never choose an image.",
    )

    @field_validator("allowed_images")
    @classmethod
    def _declarations(cls, value: list[str]) -> list[str]:
        for entry in value:
            _, declared = split_entry(entry)
            if declared and declared_versions(declared) is None:
                raise ValueError(
                    f"{entry!r}: declare contract versions as `;contract=1` or `;contract=1,2`"
                )
        return value

    deployment_id: str = Field(
        "orgplane",
        description="Value of the `orgplane.managed-by` label on every backend object: two "
        "deployments sharing a Docker engine or cluster never touch each other's objects.",
    )
    reconcile_interval: float = Field(2.0, description="Seconds between reconciler passes.")
    reconciler_enabled: bool = Field(
        True, description="Run the reconciler loop in this process (every replica may)."
    )
    lease_seconds: float = Field(
        30.0, description="How long a replica's claim on one org lasts without renewal."
    )
    start_timeout: float = Field(
        120.0, description="Seconds an instance may take to send its first heartbeat."
    )
    unhealthy_restart_after: float = Field(
        60.0, description="Seconds an instance may stay unhealthy before it is restarted."
    )
    orphan_grace_seconds: float = Field(
        300.0,
        description="Age after which backend objects labelled as ours with no org are removed.",
    )
    instance_control_plane_url: str = Field(
        "", description="URL org instances reach the control plane at; defaults to the public URL."
    )
    max_concurrent_provisioning: int = Field(
        4, description="Provisioning operations at once; more wait in a queue."
    )
    heartbeat_interval: float = Field(10.0, description="Seconds between org instance heartbeats.")
    heartbeat_transport: Literal["http", "redis"] = Field(
        "redis",
        description="How instances heartbeat after the first beat of a run: `redis` leaves each "
        "beat in the org's own Redis namespace, where one control-plane replica reads them in "
        "batches (needs `redis_url` and `redis_org_users`; otherwise `http` is used); `http` "
        "posts every beat.",
    )
    heartbeat_poll_seconds: float = Field(
        2.0,
        gt=0,
        description="Seconds between batch reads of the heartbeats left in Redis (at most half "
        "the heartbeat interval is used).",
    )
    warm_pool_size: int = Field(
        0,
        ge=0,
        description="Pre-started, unassigned instances kept per backend; a new org claims one "
        "and is ready in about a second. 0 turns the warm pool off.",
    )
    hibernate_after: float = Field(
        0.0,
        description="Seconds without requests after which a running org is hibernated (instance "
        "stopped, data kept) until its next request wakes it; 0 turns hibernation off.",
    )


class BackendSettings(_Group):
    """Options of the docker and kubernetes provisioners (``ProvisionerOptions`` fields)."""

    docker_network: str = Field(
        "", description="Docker network org containers join; empty means the default bridge."
    )
    docker_publish_ports: bool = Field(
        False, description="Publish each org container's port on a free 127.0.0.1 port."
    )
    docker_health_interval: float = Field(
        0.0,
        ge=0,
        description="Seconds between the engine's health checks of org containers (the image's "
        "HEALTHCHECK); 0 turns them off: an instance's heartbeats are its health, and each "
        "check cost the engine and the container 0.16 to 0.33 CPU-second (docs/performance.md).",
    )
    kubernetes_namespace_mode: Literal["shared", "per-org"] = Field(
        "shared",
        description="`shared`: all orgs in one namespace; `per-org`: a namespace per org with a "
        "NetworkPolicy and a ResourceQuota.",
    )
    kubernetes_namespace: str = Field("orgplane", description="Namespace of orgs in shared mode.")
    kubernetes_ingress: Literal["ingressroute", "ingress", "none"] = Field(
        "ingressroute", description="Route objects made per org: Traefik IngressRoute or Ingress."
    )
    kubernetes_ingress_class: str = Field("traefik", description="IngressClass of Ingresses.")
    kubernetes_ingress_namespace: str = Field(
        "traefik", description="Namespace of the ingress controller (per-org NetworkPolicy)."
    )
    kubernetes_control_plane_namespace: str = Field(
        "orgplane", description="Namespace of the control plane (per-org NetworkPolicy egress)."
    )
    kubernetes_control_plane_port: int = Field(
        8080, description="Port of the control plane (per-org NetworkPolicy egress)."
    )
    kubernetes_redis_namespace: str = Field(
        "orgplane", description="Namespace of Redis (per-org NetworkPolicy egress)."
    )
    kubernetes_redis_port: int = Field(6379, description="Port of Redis (NetworkPolicy egress).")
    kubernetes_storage_class: str = Field(
        "", description="StorageClass of org data volumes; empty means the cluster default."
    )


class RoutingSettings(_Group):
    """How Traefik routes requests to org instances, and custom domains."""

    routing_token: SecretStr = Field(
        SecretStr(""),
        description="Bearer token Traefik's HTTP provider presents to "
        "`GET /api/v1/routing/traefik`; empty refuses every request.",
    )
    entrypoints: str = Field(
        "web", description="Comma-separated Traefik entrypoints the org routers listen on."
    )
    tls: bool = Field(False, description="Give every org router TLS (HTTPS only).")
    cert_resolver: str = Field(
        "", description="Traefik certificate resolver for org routers when TLS is on."
    )
    dns_resolver: str = Field(
        "",
        description="`host:port` of the DNS server that checks custom-domain TXT records; "
        "empty uses the system resolver.",
    )
    domain_recheck_hours: float = Field(
        24.0, description="Hours between re-checks of a custom domain's TXT record."
    )
    domain_claim_ttl_hours: float = Field(
        168.0,
        gt=0,
        description="Hours a pending (unverified) custom-domain claim lives, from when it is "
        "made or loses its verification; expired claims are ignored and removed by "
        "housekeeping. Several orgs may hold pending claims on one hostname: the first to prove "
        "it by DNS wins and the others are dropped.",
    )
    routing_fallback_url: str = Field(
        "",
        description="URL Traefik reaches the control plane at, for the page of suspended or "
        "hibernated orgs; empty means the public URL.",
    )
    org_url_port: int = Field(
        0,
        description="Port of the org URLs the admin UI opens (`{slug}.{base_domain}:port`); "
        "0 means the scheme's default port.",
    )
    wake_url: str = Field(
        "",
        description="URL Traefik reaches the control plane at to wake hibernated orgs (the "
        "`orgplane-wake` service); empty means the fallback URL.",
    )
    proxy_url: str = Field(
        "",
        description="URL the control plane reaches Traefik's entry point at (for example "
        "`http://traefik`): before a hibernating org's instance stops, a probe for its host "
        "through Traefik confirms its requests go to the wake endpoint. Empty: the stop waits "
        "2.5 s after Traefik fetched that route, which a heavily loaded host can outlast.",
    )
    reserved_slugs: list[str] = Field(
        default_factory=list,
        description="More org slugs the platform keeps for itself, as a JSON list (besides the "
        "built-in names and every label of its own hosts: public, fallback, wake, instance "
        "URLs).",
    )
    embedded_routing: bool = Field(
        False,
        description="Embedded mode only (`orgplane up` turns it on): the control plane's own "
        "port also answers `{slug}.{base_domain}:port` by proxying to that org's local "
        "instance, as Traefik does in production, and the UI's org URLs use that port. "
        "Refused in production mode.",
    )
    wake_hold_timeout: float = Field(
        30.0,
        description="Seconds the wake endpoint holds an API request to a waking org before it "
        "answers 503 `org_starting`.",
    )

    @property
    def entrypoint_names(self) -> list[str]:
        """The entrypoints as a list."""
        return [name.strip() for name in self.entrypoints.split(",") if name.strip()]


class BackupSettings(_Group):
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


class FleetSettings(_Group):
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


class MailSettings(_Group):
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


class TenantSettings(_Group):
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


class Settings:
    """All settings groups, read once from the environment."""

    def __init__(self) -> None:
        self.server = ServerSettings()
        self.db = DatabaseSettings()
        self.security = SecuritySettings()
        self.tokens = TokenSettings()
        self.store = StoreSettings()
        self.provisioning = ProvisioningSettings()
        self.backends = BackendSettings()
        self.routing = RoutingSettings()
        self.backup = BackupSettings()
        self.fleet = FleetSettings()

        self.mail = MailSettings()
        self.tenant = TenantSettings()
        if self.routing.embedded_routing and self.server.mode != "embedded":
            raise ValueError("ORGPLANE_EMBEDDED_ROUTING is for embedded mode only")

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
            "backends": self.backends,
            "routing": self.routing,
            "backup": self.backup,
            "fleet": self.fleet,
            "mail": self.mail,
            "tenant": self.tenant,
        }

    @property
    def secure_cookies(self) -> bool:
        """The UI's cookies are Secure: asked for, or the public URL is https (then the
        browser reaches the platform over TLS, whatever the proxy forwards on)."""
        return self.security.cookie_secure or self.server.base_url.startswith("https://")

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
    BackendSettings,
    RoutingSettings,
    BackupSettings,
    FleetSettings,
    MailSettings,
    TenantSettings,
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
            default = field.get_default(call_default_factory=True)
            if isinstance(default, SecretStr):
                default = ""
            shown = f"`{default}`" if default not in ("", None) else "(empty)"
            lines.append(f"| `{_PREFIX}{name.upper()}` | {shown} | {field.description} |")
        lines.append("")
    return "\n".join(lines)
