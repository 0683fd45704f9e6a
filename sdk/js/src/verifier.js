/**
 * Verifying org tokens against the control plane's JWKS, with `jose`.
 *
 * The rules of contract v1 (the same as `org_instance/verifier.py`): compact JWS of at most
 * 8 KiB; `alg` ES256 or EdDSA only (never `none`, never HS*); `typ` `at+jwt`; no `crit` header
 * (refused, whatever it names); a `kid` naming a key of the JWKS at `ORGPLANE_JWKS_URL` (never
 * `jku`, `x5u`, `jwk` or `x5c`); the configured `iss` and `aud`; `exp`, `nbf` and `iat` present,
 * checked with at most 30 s of leeway; `org_id` this instance's org; `org_role` a known role.
 *
 * Everything that needs no key is checked first, so a forged token costs no network traffic.
 * Keys come from `jose`'s `createRemoteJWKSet`: cached (for `cacheMaxAgeMs`, default 10 min),
 * refetched at once for an unknown `kid` (a rotation) at most every `refetchIntervalMs`, one
 * fetch shared by every request waiting for it. When a refetch fails (the control plane is
 * away), the keys fetched last keep verifying.
 *
 * Every failure is one {@link InvalidToken} with the stable code `invalid_token`; its `reason`
 * is for logs, never for clients.
 *
 * @module
 */

import {
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeProtectedHeader,
  errors,
  jwtVerify,
} from "jose";

import { ALLOWED_ALGORITHMS, TOKEN_TYP } from "./contract.js";

export const MAX_TOKEN_BYTES = 8192;
export const LEEWAY_SECONDS = 30;
export const REQUIRED_CLAIMS = Object.freeze([
  "iss",
  "aud",
  "sub",
  "exp",
  "iat",
  "nbf",
  "org_id",
  "org_role",
]);
const ROLES = new Set(["owner", "admin", "member"]);
const KID = /^[A-Za-z0-9._-]{1,64}$/;
const B64URL = /^[A-Za-z0-9_-]+$/;

/** The token is malformed, forged, expired or not for this org. */
export class InvalidToken extends Error {
  /** @param {string} reason why, for logs (never for clients) */
  constructor(reason) {
    super(reason);
    this.name = "InvalidToken";
    this.code = "invalid_token";
    this.reason = reason;
  }
}

/**
 * @typedef {object} VerifierOptions
 * @property {string} jwksUrl
 * @property {string} issuer
 * @property {string} audience
 * @property {string} orgId
 * @property {number} [leewaySeconds] 0-30, default 30
 * @property {number} [refetchIntervalMs] least time between two fetches for an unknown kid (30 s)
 * @property {number} [cacheMaxAgeMs] how long fetched keys are used without a refetch (10 min)
 * @property {number} [timeoutMs] of one JWKS fetch (5 s)
 */

/**
 * The protected header, after the checks that need no key.
 * @param {unknown} token
 * @returns {{ kid: string, alg: string }}
 */
export function checkHeader(token) {
  if (typeof token !== "string" || token.length === 0 || token.length > MAX_TOKEN_BYTES) {
    throw new InvalidToken("token missing or too long");
  }
  const parts = token.split(".");
  if (parts.length !== 3) throw new InvalidToken("not a compact JWS");
  if (!B64URL.test(parts[0])) throw new InvalidToken("malformed header");
  /** @type {Record<string, unknown>} */
  let header;
  try {
    header = decodeProtectedHeader(token);
  } catch {
    throw new InvalidToken("malformed header");
  }
  const { alg, typ, kid } = header;
  if (
    typeof alg !== "string" ||
    !(/** @type {readonly string[]} */ (ALLOWED_ALGORITHMS).includes(alg))
  ) {
    throw new InvalidToken("algorithm not allowed");
  }
  if (
    typeof typ !== "string" ||
    ![TOKEN_TYP, `application/${TOKEN_TYP}`].includes(typ.toLowerCase())
  ) {
    throw new InvalidToken("wrong token type");
  }
  if ("crit" in header) throw new InvalidToken("critical header extensions are not supported");
  if (typeof kid !== "string" || !KID.test(kid)) throw new InvalidToken("bad key id");
  return { kid, alg };
}

/** Verifies org tokens for one org against one JWKS URL. */
export class OrgTokenVerifier {
  /** @param {VerifierOptions} options */
  constructor(options) {
    const leeway = options.leewaySeconds ?? LEEWAY_SECONDS;
    if (!(leeway >= 0 && leeway <= LEEWAY_SECONDS)) {
      throw new RangeError(`leewaySeconds must be between 0 and ${LEEWAY_SECONDS}`);
    }
    this.issuer = options.issuer;
    this.audience = options.audience;
    this.orgId = options.orgId;
    this.leeway = leeway;
    this.remote = createRemoteJWKSet(new URL(options.jwksUrl), {
      cooldownDuration: options.refetchIntervalMs ?? 30_000,
      cacheMaxAge: options.cacheMaxAgeMs ?? 600_000,
      timeoutDuration: options.timeoutMs ?? 5_000,
    });
    /** Why the last JWKS fetch failed ("" when it did not); for logs and readiness. */
    this.lastError = "";
  }

  /**
   * The key for a token's header: the remote set's, or the last fetched set's when the
   * control plane cannot be reached.
   * @param {import("jose").JWSHeaderParameters} header
   * @param {import("jose").FlattenedJWSInput} token
   */
  async #key(header, token) {
    try {
      const key = await this.remote(header, token);
      this.lastError = "";
      return key;
    } catch (err) {
      const cached = this.remote.jwks();
      if (
        err instanceof errors.JWKSNoMatchingKey ||
        err instanceof errors.JWKSMultipleMatchingKeys ||
        !cached
      ) {
        throw err;
      }
      this.lastError = describe(err);
      return createLocalJWKSet(cached)(header, token);
    }
  }

  /**
   * Fetch the JWKS now (a readiness check); true when keys are cached.
   * @returns {Promise<boolean>}
   */
  async refresh() {
    try {
      await this.remote.reload();
      this.lastError = "";
    } catch (err) {
      this.lastError = describe(err);
    }
    return Boolean(this.remote.jwks()?.keys?.length);
  }

  /**
   * The claims of a valid org token for this org; throws {@link InvalidToken}.
   * @param {string} token
   * @returns {Promise<import("./contract.js").OrgTokenClaims>}
   */
  async verify(token) {
    checkHeader(token);
    /** @type {import("jose").JWTPayload} */
    let claims;
    try {
      ({ payload: claims } = await jwtVerify(token, (h, t) => this.#key(h, t), {
        algorithms: [...ALLOWED_ALGORITHMS],
        issuer: this.issuer,
        audience: this.audience,
        typ: TOKEN_TYP,
        clockTolerance: this.leeway,
        requiredClaims: [...REQUIRED_CLAIMS],
      }));
    } catch (err) {
      // Hostile claim values and unreachable keys alike are a refusal, never a crash.
      throw new InvalidToken(`rejected: ${err instanceof Error ? err.name : "error"}`);
    }
    if (claims.org_id !== this.orgId) throw new InvalidToken("token is for another org");
    if (!ROLES.has(/** @type {string} */ (claims.org_role)) || typeof claims.sub !== "string") {
      throw new InvalidToken("bad subject or role");
    }
    return /** @type {import("./contract.js").OrgTokenClaims} */ (/** @type {unknown} */ (claims));
  }
}

/** @param {unknown} err */
function describe(err) {
  return (err instanceof Error ? `${err.name}: ${err.message}` : String(err)).slice(0, 200);
}
