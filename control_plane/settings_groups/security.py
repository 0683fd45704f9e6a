"""Secrets, sessions, sign-up and tokens."""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field, SecretStr, field_validator

from control_plane.settings_groups.base import Group


class SecuritySettings(Group):
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


class TokenSettings(Group):
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
