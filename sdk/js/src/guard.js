/**
 * What every request must be before an org instance's handler sees it (contract v1):
 *
 * - a malformed `Host` header (or several) is refused with 400 `invalid_host`;
 * - `GET /healthz` and `GET /readyz` pass without a token and whatever (valid) Host they name
 *   (orchestrators probe by address; probes reveal no org data);
 * - a `Host` that is not one of the org's hostnames or the instance's internal names (ports
 *   ignored) is refused with 421 `misdirected_request`;
 * - every other request needs `Authorization: Bearer <org token for this org>`, else 401
 *   `invalid_token` with an RFC 6750 challenge.
 *
 * Refusals are RFC 9457 problem+json documents shaped as `org_instance` answers them. The
 * core, {@link checkRequest}, knows no framework; {@link guardHandler} wraps a Node `http`
 * handler, {@link guardMiddleware} is an Express-style `(req, res, next)` middleware and
 * {@link guardFetch} wraps a fetch-style handler (`Bun.serve`, Deno) and {@link guardHono} is a
 * Hono middleware.
 *
 * @module
 */

import { PROBE_PATHS } from "./contract.js";
import { allowedHosts, normalizeHost } from "./config.js";

export const PROBLEM_JSON = "application/problem+json";
export const PROBLEM_TYPE_BASE = "https://orgplane.dev/problems/";

/** RFC 9110 §7.2 `Host = uri-host [ ":" port ]`. */
const HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~%!$&'()*+,;=]*)(?::([0-9]*))?$/;
const PROBES = new Set(PROBE_PATHS);

/**
 * @typedef {object} Refusal
 * @property {number} status
 * @property {Record<string, string>} headers
 * @property {string} body a problem+json document
 *
 * @typedef {{ ok: true, claims: import("./contract.js").OrgTokenClaims | null } | ({ ok: false } & Refusal)} Verdict
 *   `claims` is null on the probe paths.
 *
 * @typedef {object} GuardOptions
 * @property {{ verify(token: string): Promise<import("./contract.js").OrgTokenClaims> }} verifier
 * @property {Iterable<string>} allowedHosts normalized host names (see `allowedHosts(config)`)
 * @property {(event: string, fields: Record<string, unknown>) => void} [log] refusals, for logs
 *
 * @typedef {object} RequestFacts
 * @property {string} path without the query
 * @property {string | undefined} host the Host header (undefined when absent)
 * @property {string | undefined} authorization
 * @property {number} [hostCount] how many Host headers the request had (default 1)
 */

/**
 * A problem+json refusal.
 * @param {number} status
 * @param {string} code
 * @param {string} title
 * @param {string} detail
 * @param {Record<string, string>} [headers]
 * @returns {Refusal}
 */
export function problem(status, code, title, detail, headers = {}) {
  const body = JSON.stringify({ type: PROBLEM_TYPE_BASE + code, title, status, detail, code });
  return { status, headers: { "content-type": PROBLEM_JSON, ...headers }, body };
}

/**
 * True when `raw` is a syntactically valid Host value with a port in 0-65535.
 * @param {string} raw
 */
export function hostIsValid(raw) {
  const match = HOST.exec(raw);
  if (!match) return false;
  const digits = (match[1] ?? "").replace(/^0+/, "");
  return digits.length <= 5 && Number(digits || "0") <= 65535;
}

/**
 * Build the guard's options from an instance configuration and a verifier.
 * @param {import("./config.js").InstanceConfig} config
 * @param {GuardOptions["verifier"]} verifier
 * @returns {GuardOptions}
 */
export function guardOptions(config, verifier) {
  return { verifier, allowedHosts: allowedHosts(config) };
}

/**
 * The verdict on one request (see the module's rules).
 * @param {RequestFacts} facts
 * @param {GuardOptions} options
 * @returns {Promise<Verdict>}
 */
export async function checkRequest(facts, options) {
  const log = options.log ?? (() => {});
  const host = facts.host ?? "";
  if ((facts.hostCount ?? 1) > 1 || !hostIsValid(host)) {
    return refuse(
      400,
      "invalid_host",
      "Invalid request",
      "The Host header is not a valid host and port.",
    );
  }
  if (PROBES.has(facts.path)) return { ok: true, claims: null };
  const allowed =
    options.allowedHosts instanceof Set ? options.allowedHosts : new Set(options.allowedHosts);
  if (!allowed.has(normalizeHost(host))) {
    log("misdirected request refused", {
      host: host.slice(0, 255),
      path: facts.path.slice(0, 255),
    });
    return refuse(
      421,
      "misdirected_request",
      "Misdirected request",
      "This server does not answer for that host.",
    );
  }
  const [scheme, ...rest] = (facts.authorization ?? "").trim().split(/\s+/);
  const token = scheme.toLowerCase() === "bearer" && rest.length === 1 ? rest[0] : "";
  if (!token) return unauthorized("Send a Bearer org token for this org.", "Bearer");
  try {
    return { ok: true, claims: await options.verifier.verify(token) };
  } catch (err) {
    const reason = /** @type {{ reason?: string }} */ (err)?.reason ?? "error";
    log("token refused", { reason, path: facts.path.slice(0, 255) });
    return unauthorized(
      "The token is invalid, expired or not for this org.",
      'Bearer error="invalid_token"',
    );
  }
}

/**
 * @param {Parameters<typeof problem>} args
 * @returns {Verdict}
 */
function refuse(...args) {
  return { ok: false, ...problem(...args) };
}

/**
 * 401 `invalid_token` with an RFC 6750 §3 challenge (no error code when no token was sent).
 * @param {string} detail
 * @param {string} challenge
 */
function unauthorized(detail, challenge) {
  return refuse(401, "invalid_token", "Authentication required", detail, {
    "www-authenticate": challenge,
  });
}

/**
 * The facts of a Node `http.IncomingMessage`.
 * @param {import("node:http").IncomingMessage} req
 * @returns {RequestFacts}
 */
export function nodeFacts(req) {
  let hostCount = 0;
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    if (req.rawHeaders[i].toLowerCase() === "host") hostCount += 1;
  }
  const url = req.url ?? "/";
  const query = url.indexOf("?");
  return {
    path: query >= 0 ? url.slice(0, query) : url,
    host: req.headers.host,
    authorization: req.headers.authorization,
    hostCount,
  };
}

/**
 * @param {import("node:http").ServerResponse} res
 * @param {Refusal} refusal
 */
function sendRefusal(res, refusal) {
  res.writeHead(refusal.status, {
    ...refusal.headers,
    "content-length": Buffer.byteLength(refusal.body),
  });
  res.end(refusal.body);
}

/**
 * @typedef {import("node:http").IncomingMessage & { orgClaims?: import("./contract.js").OrgTokenClaims | null }} GuardedRequest
 */

/**
 * Wrap a Node `http` request handler: refused requests never reach it; accepted ones carry
 * the token's claims as `req.orgClaims` (null on the probe paths).
 * @param {(req: GuardedRequest, res: import("node:http").ServerResponse) => unknown} handler
 * @param {GuardOptions} options
 * @returns {(req: import("node:http").IncomingMessage, res: import("node:http").ServerResponse) => Promise<void>}
 */
export function guardHandler(handler, options) {
  const middleware = guardMiddleware(options);
  return (req, res) =>
    middleware(req, res, (err) => {
      if (err) throw err;
      return handler(req, res);
    });
}

/**
 * An Express-style middleware `(req, res, next)` (Express, Connect, Polka, Fastify's
 * middie): refuses, or sets `req.orgClaims` and calls `next()`.
 * @param {GuardOptions} options
 * @returns {(req: GuardedRequest, res: import("node:http").ServerResponse, next: (err?: unknown) => unknown) => Promise<void>}
 */
export function guardMiddleware(options) {
  return async (req, res, next) => {
    let verdict;
    try {
      verdict = await checkRequest(nodeFacts(req), options);
    } catch (err) {
      next(err);
      return;
    }
    if (!verdict.ok) {
      sendRefusal(res, verdict);
      return;
    }
    req.orgClaims = verdict.claims;
    await next();
  };
}

/**
 * The facts of a fetch `Request` (a fetch Request has no Host header of its own when made in
 * code: the URL's authority is the Host then).
 * @param {Request} request
 * @returns {RequestFacts}
 */
export function fetchFacts(request) {
  const url = new URL(request.url);
  return {
    path: url.pathname,
    host: request.headers.get("host") ?? url.host,
    authorization: request.headers.get("authorization") ?? undefined,
  };
}

/** @param {Refusal} refusal */
const refusalResponse = (refusal) =>
  new Response(refusal.body, { status: refusal.status, headers: refusal.headers });

/**
 * Wrap a fetch-style handler (`Request` in, `Response` out: `Bun.serve`, Deno, `app.fetch`).
 * The handler gets the claims as its second argument (null on the probe paths).
 * @template {unknown[]} R
 * @param {(request: Request, claims: import("./contract.js").OrgTokenClaims | null, ...rest: R) => Response | Promise<Response>} handler
 * @param {GuardOptions} options
 * @returns {(request: Request, ...rest: R) => Promise<Response>}
 */
export function guardFetch(handler, options) {
  return async (request, ...rest) => {
    const verdict = await checkRequest(fetchFacts(request), options);
    if (!verdict.ok) return refusalResponse(verdict);
    return handler(request, verdict.claims, ...rest);
  };
}

/**
 * A Hono middleware: `app.use(guardHono(options))`; handlers read `c.get("orgClaims")`.
 * @param {GuardOptions} options
 * @returns {(c: { req: { raw: Request }, set(key: "orgClaims", value: unknown): void }, next: () => Promise<void>) => Promise<Response | void>}
 */
export function guardHono(options) {
  return async (c, next) => {
    const verdict = await checkRequest(fetchFacts(c.req.raw), options);
    if (!verdict.ok) return refusalResponse(verdict);
    c.set("orgClaims", verdict.claims);
    await next();
  };
}
