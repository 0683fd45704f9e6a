"""How requests reach org instances (Traefik, custom domains, embedded routing)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from control_plane.settings_groups.base import Group


class RoutingSettings(Group):
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
