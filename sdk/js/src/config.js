/**
 * An org instance's configuration, read once from the contract's environment variables.
 *
 * The same rules as `org_instance/config.py`: a missing or invalid variable is one
 * {@link ConfigError} naming every problem, so a misconfigured instance never starts.
 *
 * @module
 */

import { randomUUID } from "node:crypto";
import { hostname } from "node:os";

import {
  DEFAULT_HEARTBEAT_INTERVAL,
  DEFAULT_PORT,
  Env,
  orgAudience,
  redisNamespace,
} from "./contract.js";

const ID = /^[A-Za-z0-9_-]{1,64}$/;

/** The environment cannot configure an instance; the message lists what to fix. */
export class ConfigError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = "ConfigError";
  }
}

/**
 * @typedef {object} InstanceConfig
 * @property {string} orgId
 * @property {string} orgSlug
 * @property {string} instanceId
 * @property {string} instanceCredential the heartbeat Bearer secret (never log it)
 * @property {string} controlPlaneUrl without a trailing slash ("" when not set)
 * @property {string} jwksUrl
 * @property {string} issuer
 * @property {string} audience
 * @property {string} redisUrl
 * @property {string} dataDir
 * @property {string[]} hostnames normalized
 * @property {string[]} internalHosts normalized
 * @property {number} heartbeatInterval seconds
 * @property {string} bindHost
 * @property {number} port
 * @property {string} version
 */

/**
 * A Host header or hostname reduced to a lowercase name without port or trailing dot.
 * @param {string} value
 * @returns {string}
 */
export function normalizeHost(value) {
  let host = value.trim().toLowerCase();
  if (host.startsWith("[")) {
    const end = host.indexOf("]");
    return end >= 0 ? host.slice(1, end) : host;
  }
  if (host.split(":").length === 2) host = host.split(":", 1)[0];
  return host.replace(/\.+$/, "");
}

/** @param {string} raw */
function hostList(raw) {
  return raw
    .split(",")
    .map(normalizeHost)
    .filter((h) => h !== "");
}

/**
 * The hosts a request may name: the org's hostnames, the instance's internal names, and its
 * own loopback names and hostname (as `org_instance` allows them).
 * @param {Pick<InstanceConfig, "hostnames" | "internalHosts" | "bindHost">} config
 * @returns {Set<string>}
 */
export function allowedHosts(config) {
  const own = ["localhost", "127.0.0.1", "::1", normalizeHost(hostname())];
  if (!["0.0.0.0", "::", ""].includes(config.bindHost)) own.push(normalizeHost(config.bindHost));
  return new Set([...config.hostnames, ...config.internalHosts, ...own]);
}

/**
 * @param {string} raw
 * @param {number} fallback
 * @returns {number | null}
 */
function number(raw, fallback) {
  if (raw === "") return fallback;
  const value = Number(raw);
  return Number.isFinite(value) ? value : null;
}

/**
 * The configuration named by `env` (default: `process.env`); throws {@link ConfigError}.
 * @param {Record<string, string | undefined>} [env]
 * @returns {InstanceConfig}
 */
export function configFromEnv(env = process.env) {
  /** @param {string} name */
  const get = (name) => (env[name] ?? "").trim();
  const problems = [];
  const orgId = get(Env.ORG_ID);
  if (!ID.test(orgId)) problems.push(`${Env.ORG_ID} must be 1-64 letters, digits, '-' or '_'`);
  const credential = get(Env.INSTANCE_CREDENTIAL);
  if (credential.length < 16) {
    problems.push(`${Env.INSTANCE_CREDENTIAL} is required (16+ characters)`);
  }
  const namespace = get(Env.REDIS_NAMESPACE);
  if (namespace && orgId && namespace !== redisNamespace(orgId)) {
    problems.push(`${Env.REDIS_NAMESPACE} must be '${redisNamespace(orgId)}'`);
  }
  const instanceId = get(Env.INSTANCE_ID) || randomUUID().replaceAll("-", "");
  if (!ID.test(instanceId)) {
    problems.push(`${Env.INSTANCE_ID} must be 1-64 letters, digits, '-' or '_'`);
  }
  const interval = number(get(Env.HEARTBEAT_INTERVAL), DEFAULT_HEARTBEAT_INTERVAL);
  if (interval === null || interval < 0.05 || interval > 3600) {
    problems.push(`${Env.HEARTBEAT_INTERVAL} must be a number of seconds (0.05-3600)`);
  }
  const port = number(get(Env.PORT), DEFAULT_PORT);
  if (port === null || !Number.isInteger(port) || port < 0 || port > 65535) {
    problems.push(`${Env.PORT} must be a port number`);
  }
  const controlPlaneUrl = get(Env.CONTROL_PLANE_URL).replace(/\/+$/, "");
  const jwksUrl =
    get(Env.JWKS_URL) || (controlPlaneUrl ? `${controlPlaneUrl}/.well-known/jwks.json` : "");
  const issuer = get(Env.ISSUER) || controlPlaneUrl;
  if (!jwksUrl || !issuer) {
    problems.push(`${Env.CONTROL_PLANE_URL} (or ${Env.JWKS_URL} and ${Env.ISSUER}) is required`);
  }
  if (problems.length) throw new ConfigError(problems.join("; "));
  return {
    orgId,
    orgSlug: get(Env.ORG_SLUG),
    instanceId,
    instanceCredential: credential,
    controlPlaneUrl,
    jwksUrl,
    issuer,
    audience: get(Env.AUDIENCE) || orgAudience(orgId),
    redisUrl: get(Env.REDIS_URL),
    dataDir: get(Env.DATA_DIR),
    hostnames: hostList(get(Env.HOSTNAMES)),
    internalHosts: hostList(get(Env.INTERNAL_HOSTS)),
    heartbeatInterval: /** @type {number} */ (interval),
    bindHost: get(Env.BIND_HOST) || "0.0.0.0",
    port: /** @type {number} */ (port),
    version: get(Env.VERSION) || "0.1.0",
  };
}
