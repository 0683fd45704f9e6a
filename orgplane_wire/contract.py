"""The wire contract between the control plane and an org instance.

Both sides import this module, so it imports nothing but the standard library. It names:

* the environment variables an org instance is configured by (the provisioner sets them);
* the claims of an org token and how an org's audience is spelled;
* the heartbeat request and answer bodies and the endpoint they travel to.

Changing a name here is a wire-protocol change: bump ``CONTRACT_VERSION``.
"""

from __future__ import annotations

import math
from typing import Final, Literal, NotRequired, TypedDict

#: The contract version this module describes. An instance sends it in every heartbeat
#: (``contract_version``); the control plane answers the version it will speak with the
#: instance, or ``409 contract_version_unsupported`` with the versions it supports.
CONTRACT_VERSION: Final = 1


class Env:
    """Environment variable names that configure an org instance."""

    ORG_ID: Final = "ORGPLANE_ORG_ID"
    ORG_SLUG: Final = "ORGPLANE_ORG_SLUG"
    INSTANCE_ID: Final = "ORGPLANE_INSTANCE_ID"
    #: Base URL of the control plane, as the instance can reach it.
    CONTROL_PLANE_URL: Final = "ORGPLANE_CONTROL_PLANE_URL"
    JWKS_URL: Final = "ORGPLANE_JWKS_URL"
    #: The ``iss`` the instance requires on every token.
    ISSUER: Final = "ORGPLANE_ISSUER"
    #: The ``aud`` the instance requires on every token (see :func:`org_audience`).
    AUDIENCE: Final = "ORGPLANE_AUDIENCE"
    #: Secret the instance presents on heartbeats; also the key material for its own secrets.
    INSTANCE_CREDENTIAL: Final = "ORGPLANE_INSTANCE_CREDENTIAL"
    #: ``redis://user:password@host:port/db``: the org's own ACL user, or empty for memory stores.
    REDIS_URL: Final = "ORGPLANE_REDIS_URL"
    REDIS_NAMESPACE: Final = "ORGPLANE_REDIS_NAMESPACE"
    DATA_DIR: Final = "ORGPLANE_DATA_DIR"
    #: Comma-separated hostnames the instance answers for (besides its internal address).
    HOSTNAMES: Final = "ORGPLANE_HOSTNAMES"
    #: Comma-separated internal names the instance is addressed by (its container name, its
    #: Service's DNS names); set by the provisioner.
    INTERNAL_HOSTS: Final = "ORGPLANE_INTERNAL_HOSTS"
    HEARTBEAT_INTERVAL: Final = "ORGPLANE_HEARTBEAT_INTERVAL"
    #: JSON object of plan limits, see :class:`Limits`.
    LIMITS: Final = "ORGPLANE_LIMITS"
    BIND_HOST: Final = "ORGPLANE_BIND_HOST"
    PORT: Final = "ORGPLANE_PORT"
    LOG_FORMAT: Final = "ORGPLANE_LOG_FORMAT"
    VERSION: Final = "ORGPLANE_INSTANCE_VERSION"
    #: Set on a warm-pool spare instead of an org's configuration: the spare starts in pool
    #: mode and waits for ``POST`` :data:`POOL_ASSIGN_PATH` with this secret as Bearer token.
    POOL_SECRET: Final = "ORGPLANE_POOL_SECRET"


#: Path on the control plane that receives heartbeats (POST, Bearer instance credential).
HEARTBEAT_PATH: Final = "/api/v1/instances/heartbeat"
#: Path on a spare in pool mode that assigns it to its org (POST, Bearer pool secret, body
#: :class:`PoolAssignment`); answered once, then 409.
POOL_ASSIGN_PATH: Final = "/pool/assign"
#: File in the data directory where an assigned spare keeps its org's environment (mode 0600):
#: a restart of the spare comes back as the org.
ASSIGNMENT_FILE: Final = "assignment.json"
#: Port the org instance listens on inside its container / pod.
DEFAULT_PORT: Final = 8000
DEFAULT_HEARTBEAT_INTERVAL: Final = 10.0
#: Jitter (a fraction) and cap (seconds) of an instance's heartbeat retries.
HEARTBEAT_JITTER: Final = 0.1
MAX_HEARTBEAT_BACKOFF_SECONDS: Final = 60.0

#: The ``typ`` header every org and access token carries (RFC 9068).
TOKEN_TYP: Final = "at+jwt"
#: Signing algorithms a verifier accepts; never ``none``, never HS*.
ALLOWED_ALGORITHMS: Final = ("ES256", "EdDSA")

OrgRole = Literal["owner", "admin", "member"]
#: The scopes token exchange grants each role (a client may ask for fewer); the instance checks
#: them per route (``org_instance/scopes.py``).
ROLE_SCOPES: Final[dict[str, tuple[str, ...]]] = {
    "member": ("org:read", "org:write"),
    "admin": ("org:read", "org:write", "org:admin"),
    "owner": ("org:read", "org:write", "org:admin", "org:owner"),
}


def heartbeat_backoff_cap(interval: float) -> float:
    """The longest wait, before jitter, between heartbeat attempts while they fail."""
    return max(interval, min(MAX_HEARTBEAT_BACKOFF_SECONDS, 8 * interval))


def longest_heartbeat_gap(interval: float) -> float:
    """The longest an instance can go between heartbeat attempts (backoff cap plus jitter):
    after a control-plane outage its next beat may be this far away."""
    return heartbeat_backoff_cap(interval) * (1 + HEARTBEAT_JITTER)


#: Where the control plane sends a browser back to an org instance after sign-in: the
#: instance's OAuth redirect URI on each of the org's hosts (``org_instance.browser_auth``).
SIGN_IN_CALLBACK_PATH: Final = "/auth/callback"


def instance_client_id(org_id: str) -> str:
    """The OAuth client id of the org's instance at the control plane (its client secret is
    the instance credential)."""
    return f"oi-{org_id}"


def org_audience(org_id: str) -> str:
    """The ``aud`` of tokens issued for the org with this id."""
    return f"urn:orgplane:org:{org_id}"


def redis_namespace(org_id: str) -> str:
    """Prefix of every Redis key and channel that belongs to the org."""
    return f"org:{org_id}"


def heartbeat_key(org_id: str) -> str:
    """Where an instance heartbeating over Redis leaves its latest :class:`HeartbeatBody`
    (JSON, in its own namespace, expiring after :func:`heartbeat_key_ttl`)."""
    return f"{redis_namespace(org_id)}:orgplane:heartbeat"


def heartbeat_answer_key(org_id: str) -> str:
    """Where the control plane leaves its :class:`HeartbeatAnswer` for an instance that
    heartbeats over Redis. The instance reads it with every beat; while it is missing (never
    written, or expired because no control plane reads the heartbeats) the instance goes back
    to ``POST`` :data:`HEARTBEAT_PATH`."""
    return f"{redis_namespace(org_id)}:orgplane:heartbeat-answer"


def revocations_key(org_id: str) -> str:
    """The org's revocation list, a Redis hash the control plane writes: field ``sub:<user
    id>`` or ``org`` -> unix second T (org tokens of that user, or all of them, with ``iat <=
    T`` are refused), ``jti:<jti>`` -> its ``exp`` (that token is refused), or ``kid:<kid>`` ->
    T (a signing key retired in an emergency: every token it signed is refused). Each write is
    also published on :func:`revocations_channel` as ``<field>=<value>``."""
    return f"{redis_namespace(org_id)}:orgplane:revocations"


def revocations_channel(org_id: str) -> str:
    """The pub/sub channel on which revocations reach the org's instances at once."""
    return f"{redis_namespace(org_id)}:orgplane:revocations"


#: While an instance that uses Redis cannot follow the revocation channel (Redis down, not yet
#: subscribed), it accepts only org tokens issued within this many seconds: revocation then
#: degrades to a short token lifetime instead of to none.
REVOCATION_FALLBACK_SECONDS: Final = 60


def heartbeat_key_ttl(interval: float) -> int:
    """Seconds a heartbeat left in Redis lives: three intervals, as the liveness window."""
    return max(2, math.ceil(3 * interval))


class Limits(TypedDict, total=False):
    """Plan limits an instance enforces. A missing key means unlimited."""

    max_sessions: int
    max_storage_bytes: int
    requests_per_minute: int
    max_runners: int
    max_members: int


class Actor(TypedDict):
    """RFC 8693 ``act`` claim: who acts on behalf of ``sub`` (staff support access)."""

    sub: str
    email: NotRequired[str]


class OrgTokenClaims(TypedDict):
    """Claims of an org token issued by token exchange (RFC 8693, RFC 9068)."""

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
    """Counters an instance reports; monotonically increasing since its start."""

    requests: int
    sessions: int
    messages: int
    files: int
    storage_bytes: int
    active_users: int


class HeartbeatBody(TypedDict):
    """What an org instance POSTs to :data:`HEARTBEAT_PATH`."""

    org_id: str
    instance_id: str
    version: str
    started_at: str
    status: Literal["ok", "degraded"]
    seq: int
    db_ok: bool
    redis_ok: bool
    usage: UsageCounters
    #: The ``config_version`` of the limits the instance runs with (a control plane that
    #: answers over Redis writes a new answer when it is behind).
    config_version: NotRequired[int]
    #: The contract version the instance speaks (absent: 1).
    contract_version: NotRequired[int]


class PoolAssignment(TypedDict):
    """What the control plane POSTs to :data:`POOL_ASSIGN_PATH`: the org's part of the
    :class:`Env` environment (never where the instance listens or keeps its data)."""

    env: dict[str, str]


class Branding(TypedDict):
    """The org's branding in force (each value its own or inherited from a parent org), for
    the instance to show: ``/api/v1/me`` answers it."""

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
    #: The contract version the control plane speaks with this instance.
    contract_version: int
    #: ``"redis"``: send the next heartbeats to :func:`heartbeat_key` and read this answer from
    #: :func:`heartbeat_answer_key`; absent: keep posting to :data:`HEARTBEAT_PATH`.
    via: NotRequired[Literal["redis"]]
    #: The org's branding; sent when the instance's ``config_version`` is behind (a change of
    #: branding bumps it): adopt it with ``config_version``. Absent: keep what you have.
    branding: NotRequired[Branding]
