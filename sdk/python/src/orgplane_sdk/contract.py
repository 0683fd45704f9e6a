"""Contract v1 between an orgplane control plane and an org instance, as this SDK speaks it.

A standalone copy of what an instance needs from ``orgplane_wire/contract.py`` (this package
never imports orgplane); ``tests/sdk/test_py_contract.py`` in the orgplane repository fails when
the two differ. The language-neutral text is ``docs/instance-contract.md``.
"""

from __future__ import annotations

from typing import Final, Literal, NotRequired, TypedDict

#: The contract version this SDK speaks; sent as ``contract_version`` in every heartbeat.
CONTRACT_VERSION: Final = 1


class Env:
    """The environment variables the provisioner sets for an instance."""

    ORG_ID: Final = "ORGPLANE_ORG_ID"
    ORG_SLUG: Final = "ORGPLANE_ORG_SLUG"
    INSTANCE_ID: Final = "ORGPLANE_INSTANCE_ID"
    CONTROL_PLANE_URL: Final = "ORGPLANE_CONTROL_PLANE_URL"
    JWKS_URL: Final = "ORGPLANE_JWKS_URL"
    ISSUER: Final = "ORGPLANE_ISSUER"
    AUDIENCE: Final = "ORGPLANE_AUDIENCE"
    INSTANCE_CREDENTIAL: Final = "ORGPLANE_INSTANCE_CREDENTIAL"
    REDIS_URL: Final = "ORGPLANE_REDIS_URL"
    REDIS_NAMESPACE: Final = "ORGPLANE_REDIS_NAMESPACE"
    DATA_DIR: Final = "ORGPLANE_DATA_DIR"
    HOSTNAMES: Final = "ORGPLANE_HOSTNAMES"
    INTERNAL_HOSTS: Final = "ORGPLANE_INTERNAL_HOSTS"
    HEARTBEAT_INTERVAL: Final = "ORGPLANE_HEARTBEAT_INTERVAL"
    LIMITS: Final = "ORGPLANE_LIMITS"
    BIND_HOST: Final = "ORGPLANE_BIND_HOST"
    PORT: Final = "ORGPLANE_PORT"
    LOG_FORMAT: Final = "ORGPLANE_LOG_FORMAT"
    VERSION: Final = "ORGPLANE_INSTANCE_VERSION"
    POOL_SECRET: Final = "ORGPLANE_POOL_SECRET"


HEARTBEAT_PATH: Final = "/api/v1/instances/heartbeat"
DEFAULT_PORT: Final = 8000
DEFAULT_HEARTBEAT_INTERVAL: Final = 10.0
HEARTBEAT_JITTER: Final = 0.1
MAX_HEARTBEAT_BACKOFF_SECONDS: Final = 60.0
TOKEN_TYP: Final = "at+jwt"
ALLOWED_ALGORITHMS: Final = ("ES256", "EdDSA")
#: Paths every instance serves without a token or Host check.
PROBE_PATHS: Final = frozenset({"/healthz", "/readyz"})

OrgRole = Literal["owner", "admin", "member"]
ROLE_SCOPES: Final[dict[str, tuple[str, ...]]] = {
    "member": ("org:read", "org:write"),
    "admin": ("org:read", "org:write", "org:admin"),
    "owner": ("org:read", "org:write", "org:admin", "org:owner"),
}


def org_audience(org_id: str) -> str:
    """The ``aud`` of the org's tokens."""
    return f"urn:orgplane:org:{org_id}"


def redis_namespace(org_id: str) -> str:
    """The prefix of the org's Redis keys and channels (without the separating ``:``)."""
    return f"org:{org_id}"


def revocations_key(org_id: str) -> str:
    """The org's revocation list: a Redis hash, field ``sub:<user id>`` or ``org`` -> unix
    second T (that user's tokens, or all, with ``iat <= T`` are refused), ``jti:<jti>`` (that
    token), ``kid:<kid>`` (every token that key signed)."""
    return f"{redis_namespace(org_id)}:orgplane:revocations"


def revocations_channel(org_id: str) -> str:
    """Where each revocation is published as ``<field>=<value>``."""
    return f"{redis_namespace(org_id)}:orgplane:revocations"


#: While an instance with Redis cannot follow the revocation channel, it accepts only tokens
#: issued within this many seconds.
REVOCATION_FALLBACK_SECONDS: Final = 60


def heartbeat_backoff_cap(interval: float) -> float:
    """The longest wait, before jitter, between failing heartbeat attempts."""
    return max(interval, min(MAX_HEARTBEAT_BACKOFF_SECONDS, 8 * interval))


class Limits(TypedDict, total=False):
    """Plan limits from ``ORGPLANE_LIMITS`` and heartbeat answers; missing means unlimited."""

    max_sessions: int
    max_storage_bytes: int
    requests_per_minute: int
    max_runners: int
    max_members: int


class Actor(TypedDict):
    """The ``act`` claim (RFC 8693): staff acting for ``sub``."""

    sub: str
    email: NotRequired[str]


class OrgTokenClaims(TypedDict):
    """What a verified org token holds."""

    iss: str
    sub: str
    aud: str
    exp: int
    iat: int
    nbf: int
    jti: str
    client_id: str
    scope: str
    org_id: str
    org_slug: str
    org_role: OrgRole
    plan: str
    features: list[str]
    act: NotRequired[Actor]


class UsageCounters(TypedDict, total=False):
    """Counters since the instance started."""

    requests: int
    sessions: int
    messages: int
    files: int
    storage_bytes: int
    active_users: int


class HeartbeatBody(TypedDict):
    """The JSON an instance POSTs to :data:`HEARTBEAT_PATH`."""

    org_id: str
    instance_id: str
    version: str
    started_at: str
    status: Literal["ok", "degraded"]
    seq: int
    db_ok: bool
    redis_ok: bool
    usage: UsageCounters
    config_version: NotRequired[int]
    contract_version: NotRequired[int]


class Branding(TypedDict):
    """The org's branding in force (each value its own or inherited from a parent org)."""

    #: The org's display name (its name when none is set).
    display_name: str
    #: ``#rrggbb``, or None when no org up the tree sets one.
    primary_color: str | None
    #: ``#ffffff`` or ``#111111``: whichever contrasts more with ``primary_color`` (WCAG).
    text_color: str | None
    contact_email: str | None
    #: An absolute URL on the control plane (public, named by the logo's SHA-256).
    logo_url: str | None


class HeartbeatAnswer(TypedDict):
    """The control plane's answer to a heartbeat."""

    accepted: bool
    config_version: int
    interval: float
    limits: Limits
    via: NotRequired[Literal["redis"]]
    #: The version the control plane speaks with this instance (older control planes omit
    #: it: read it with ``.get("contract_version", 1)``).
    contract_version: int
    #: The org's branding, sent when the instance's ``config_version`` is behind (a change of
    #: branding bumps it). Absent: keep what you have.
    branding: NotRequired[Branding]
