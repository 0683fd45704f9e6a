/**
 * The wire contract between the orgplane control plane and an org instance, version 1.
 *
 * The same names and values as `orgplane_wire/contract.py` (a Python test compares them):
 * environment variables the provisioner sets, the heartbeat endpoint and its bodies, the org
 * token rules and the Redis namespace. Changing a value here is a wire-protocol change.
 *
 * @module
 */

/** The contract version this SDK speaks (sent as `contract_version` in every heartbeat). */
export const CONTRACT_VERSION = 1;

/** Environment variable names that configure an org instance. */
export const Env = Object.freeze({
  ORG_ID: "ORGPLANE_ORG_ID",
  ORG_SLUG: "ORGPLANE_ORG_SLUG",
  INSTANCE_ID: "ORGPLANE_INSTANCE_ID",
  /** Base URL of the control plane, as the instance can reach it. */
  CONTROL_PLANE_URL: "ORGPLANE_CONTROL_PLANE_URL",
  JWKS_URL: "ORGPLANE_JWKS_URL",
  /** The `iss` the instance requires on every token. */
  ISSUER: "ORGPLANE_ISSUER",
  /** The `aud` the instance requires on every token (see {@link orgAudience}). */
  AUDIENCE: "ORGPLANE_AUDIENCE",
  /** Secret the instance presents on heartbeats (Bearer). */
  INSTANCE_CREDENTIAL: "ORGPLANE_INSTANCE_CREDENTIAL",
  /** `redis://user:password@host:port/db`: the org's own ACL user, or empty. */
  REDIS_URL: "ORGPLANE_REDIS_URL",
  REDIS_NAMESPACE: "ORGPLANE_REDIS_NAMESPACE",
  DATA_DIR: "ORGPLANE_DATA_DIR",
  /** Comma-separated hostnames the instance answers for. */
  HOSTNAMES: "ORGPLANE_HOSTNAMES",
  /** Comma-separated internal names the instance is addressed by (container or Service name). */
  INTERNAL_HOSTS: "ORGPLANE_INTERNAL_HOSTS",
  HEARTBEAT_INTERVAL: "ORGPLANE_HEARTBEAT_INTERVAL",
  /** JSON object of plan limits. */
  LIMITS: "ORGPLANE_LIMITS",
  BIND_HOST: "ORGPLANE_BIND_HOST",
  PORT: "ORGPLANE_PORT",
  LOG_FORMAT: "ORGPLANE_LOG_FORMAT",
  VERSION: "ORGPLANE_INSTANCE_VERSION",
  /** Set on a warm-pool spare instead of an org's configuration (pool mode; not in this SDK). */
  POOL_SECRET: "ORGPLANE_POOL_SECRET",
});

/** Path on the control plane that receives heartbeats (POST, Bearer instance credential). */
export const HEARTBEAT_PATH = "/api/v1/instances/heartbeat";
/** Path on a spare in pool mode that assigns it to its org. */
export const POOL_ASSIGN_PATH = "/pool/assign";
/** File in the data directory where an assigned spare keeps its org's environment. */
export const ASSIGNMENT_FILE = "assignment.json";
/** Port the org instance listens on inside its container or pod. */
export const DEFAULT_PORT = 8000;
export const DEFAULT_HEARTBEAT_INTERVAL = 10.0;
/** Jitter (a fraction) of an instance's heartbeat waits. */
export const HEARTBEAT_JITTER = 0.1;
/** Cap (seconds) of the heartbeat backoff while the control plane is away. */
export const MAX_HEARTBEAT_BACKOFF_SECONDS = 60.0;
/** The `typ` header of every org token (RFC 9068). */
export const TOKEN_TYP = "at+jwt";
/** Signing algorithms a verifier accepts; never `none`, never HS*. */
export const ALLOWED_ALGORITHMS = Object.freeze(/** @type {const} */ (["ES256", "EdDSA"]));
/** While Redis revocations cannot be followed, only org tokens this young are accepted. */
export const REVOCATION_FALLBACK_SECONDS = 60;
/** Scopes token exchange grants each role. */
export const ROLE_SCOPES = Object.freeze({
  member: Object.freeze(["org:read", "org:write"]),
  admin: Object.freeze(["org:read", "org:write", "org:admin"]),
  owner: Object.freeze(["org:read", "org:write", "org:admin", "org:owner"]),
});
/** The paths every instance serves without a token and without a Host check. */
export const PROBE_PATHS = Object.freeze(["/healthz", "/readyz"]);

/**
 * The longest wait, before jitter, between heartbeat attempts while they fail.
 * @param {number} interval seconds between heartbeats
 * @returns {number}
 */
export function heartbeatBackoffCap(interval) {
  return Math.max(interval, Math.min(MAX_HEARTBEAT_BACKOFF_SECONDS, 8 * interval));
}

/**
 * The longest an instance can go between heartbeat attempts (backoff cap plus jitter).
 * @param {number} interval
 * @returns {number}
 */
export function longestHeartbeatGap(interval) {
  return heartbeatBackoffCap(interval) * (1 + HEARTBEAT_JITTER);
}

/**
 * The `aud` of tokens issued for the org with this id.
 * @param {string} orgId
 * @returns {string}
 */
export function orgAudience(orgId) {
  return `urn:orgplane:org:${orgId}`;
}

/**
 * Prefix of every Redis key and channel that belongs to the org (without the final `:`).
 * @param {string} orgId
 * @returns {string}
 */
export function redisNamespace(orgId) {
  return `org:${orgId}`;
}

/**
 * Seconds a heartbeat left in Redis lives: three intervals.
 * @param {number} interval
 * @returns {number}
 */
export function heartbeatKeyTtl(interval) {
  return Math.max(2, Math.ceil(3 * interval));
}

/**
 * @typedef {"owner" | "admin" | "member"} OrgRole
 *
 * @typedef {object} Limits Plan limits an instance enforces; a missing key means unlimited.
 * @property {number} [max_sessions]
 * @property {number} [max_storage_bytes]
 * @property {number} [requests_per_minute]
 * @property {number} [max_runners]
 * @property {number} [max_members]
 *
 * @typedef {object} Actor RFC 8693 `act` claim: who acts on behalf of `sub`.
 * @property {string} sub
 * @property {string} [email]
 *
 * @typedef {object} OrgTokenClaims Claims of an org token (RFC 8693 exchange, RFC 9068).
 * @property {string} iss
 * @property {string} sub
 * @property {string} aud
 * @property {number} exp
 * @property {number} iat
 * @property {number} nbf
 * @property {string} jti
 * @property {string} client_id
 * @property {string} scope
 * @property {string} org_id
 * @property {string} org_slug
 * @property {OrgRole} org_role
 * @property {string} plan
 * @property {string[]} features
 * @property {Actor} [act]
 *
 * @typedef {object} UsageCounters Counters an instance reports, increasing since its start.
 * @property {number} [requests]
 * @property {number} [sessions]
 * @property {number} [messages]
 * @property {number} [files]
 * @property {number} [storage_bytes]
 * @property {number} [active_users]
 *
 * @typedef {object} HeartbeatBody What an org instance POSTs to {@link HEARTBEAT_PATH}.
 * @property {string} org_id
 * @property {string} instance_id
 * @property {string} version
 * @property {string} started_at ISO 8601 time the instance started
 * @property {"ok" | "degraded"} status
 * @property {number} seq one more than the previous heartbeat's
 * @property {boolean} db_ok
 * @property {boolean} redis_ok
 * @property {UsageCounters} usage
 * @property {number} [config_version] the limits' version the instance runs with
 * @property {number} [contract_version] the contract version the instance speaks (absent: 1)
 *
 * @typedef {object} HeartbeatAnswer The control plane's answer to a heartbeat.
 * @property {boolean} accepted
 * @property {number} config_version
 * @property {number} interval seconds until the next heartbeat
 * @property {Limits} limits
 * @property {"redis"} [via] the control plane would read heartbeats from Redis (optional)
 * @property {number} [contract_version] the version the control plane speaks with this instance
 */

/**
 * Every value above as plain JSON (what `contract.json` holds; a test compares it with the
 * Python module).
 * @returns {Record<string, unknown>}
 */
export function contractValues() {
  return {
    CONTRACT_VERSION,
    Env: { ...Env },
    HEARTBEAT_PATH,
    POOL_ASSIGN_PATH,
    ASSIGNMENT_FILE,
    DEFAULT_PORT,
    DEFAULT_HEARTBEAT_INTERVAL,
    HEARTBEAT_JITTER,
    MAX_HEARTBEAT_BACKOFF_SECONDS,
    TOKEN_TYP,
    ALLOWED_ALGORITHMS: [...ALLOWED_ALGORITHMS],
    REVOCATION_FALLBACK_SECONDS,
    ROLE_SCOPES: Object.fromEntries(Object.entries(ROLE_SCOPES).map(([r, s]) => [r, [...s]])),
    examples: {
      org_audience: orgAudience("o-1"),
      redis_namespace: redisNamespace("o-1"),
      heartbeat_backoff_cap: [0.5, 2, 10, 30].map(heartbeatBackoffCap),
      longest_heartbeat_gap: [0.5, 2, 10, 30].map(longestHeartbeatGap),
      heartbeat_key_ttl: [0.1, 2, 10].map(heartbeatKeyTtl),
    },
  };
}
