// Test helpers: real keys (jose), a JWKS server and a control plane stand-in on 127.0.0.1.
import { once } from "node:events";
import { createServer, request } from "node:http";

import { SignJWT, exportJWK, generateKeyPair } from "jose";

import { orgAudience } from "../src/contract.js";

export const ISSUER = "http://cp.test";
export const ORG_ID = "org-a";

/**
 * A signing key: its private half and its public JWK.
 * @param {"ES256" | "EdDSA"} alg
 * @param {string} kid
 */
export async function makeKey(alg, kid) {
  const { privateKey, publicKey } = await generateKeyPair(
    alg,
    alg === "EdDSA" ? { crv: "Ed25519" } : {},
  );
  const jwk = { ...(await exportJWK(publicKey)), kid, alg, use: "sig" };
  return { alg, kid, privateKey, jwk };
}

/** Claims of a valid org token for `orgId`, with `extra` merged in. */
export function claims(extra = {}, orgId = ORG_ID) {
  const now = Math.floor(Date.now() / 1000);
  return {
    iss: ISSUER,
    sub: "user-1",
    aud: orgAudience(orgId),
    exp: now + 300,
    iat: now,
    nbf: now,
    jti: `jti-${Math.random()}`,
    client_id: "orgplane-web",
    scope: "org:read org:write",
    org_id: orgId,
    org_slug: "acme",
    org_role: "member",
    plan: "free",
    features: [],
    ...extra,
  };
}

/**
 * A signed org token.
 * @param {{ alg: string, kid: string, privateKey: CryptoKey }} key
 * @param {Record<string, unknown>} [payload]
 * @param {Record<string, unknown>} [header] protected header fields added
 */
export function sign(key, payload = claims(), header = {}) {
  return new SignJWT(payload)
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: "at+jwt", ...header })
    .sign(key.privateKey);
}

/**
 * An HTTP server on 127.0.0.1 (a free port) answering with `handler`; `close()` when done.
 * @param {(req: import("node:http").IncomingMessage, res: import("node:http").ServerResponse, body: string) => void} handler
 */
export async function serve(handler) {
  const server = createServer(async (req, res) => {
    let body = "";
    for await (const chunk of req) body += chunk;
    handler(req, res, body);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = /** @type {import("node:net").AddressInfo} */ (server.address());
  return {
    server,
    url: `http://127.0.0.1:${port}`,
    port,
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

/** A JWKS endpoint whose key list the test changes; counts the fetches. */
export async function jwksServer(keys) {
  const state = { keys: [...keys], fetches: 0, down: false };
  const http = await serve((req, res) => {
    state.fetches += 1;
    if (state.down) {
      res.writeHead(503).end();
      return;
    }
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ keys: state.keys.map((k) => k.jwk) }));
  });
  return Object.assign(state, { url: `${http.url}/.well-known/jwks.json`, close: http.close });
}

/**
 * A raw request (node:http, so the Host header can be anything).
 * @param {number} port
 * @param {string} path
 * @param {Record<string, string>} headers
 * @returns {Promise<{ status: number, headers: import("node:http").IncomingHttpHeaders, body: any }>}
 */
export function get(port, path, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: "127.0.0.1", port, path, headers, method: "GET", agent: false },
      async (res) => {
        let text = "";
        for await (const chunk of res) text += chunk;
        let body = text;
        try {
          body = JSON.parse(text);
        } catch {
          /* not JSON */
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
      },
    );
    req.on("error", reject);
    req.end();
  });
}
