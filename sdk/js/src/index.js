/**
 * `@orgplane/instance-sdk`: make a Node.js or Bun server an orgplane org instance.
 *
 * @module
 */

export * from "./contract.js";
export { ConfigError, allowedHosts, configFromEnv, normalizeHost } from "./config.js";
export {
  InvalidToken,
  LEEWAY_SECONDS,
  MAX_TOKEN_BYTES,
  OrgTokenVerifier,
  checkHeader,
} from "./verifier.js";
export { HeartbeatRefused, HeartbeatSender, backoffDelay, firstBeatDelay } from "./heartbeat.js";
export {
  PROBLEM_JSON,
  checkRequest,
  fetchFacts,
  guardFetch,
  guardHono,
  guardHandler,
  guardMiddleware,
  guardOptions,
  hostIsValid,
  problem,
} from "./guard.js";
export { RedisNamespace } from "./redis.js";
export { STOP_DEADLINE_MS, closeServer, serveUntilSignal } from "./lifecycle.js";
