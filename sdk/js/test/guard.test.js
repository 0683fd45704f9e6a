import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer } from "node:http";
import { after, before, describe, test } from "node:test";

import { orgAudience } from "../src/contract.js";
import { Hono } from "hono";

import {
  checkRequest,
  guardFetch,
  guardHandler,
  guardHono,
  guardMiddleware,
  hostIsValid,
} from "../src/guard.js";
import { OrgTokenVerifier } from "../src/verifier.js";
import { ISSUER, ORG_ID, claims, get, jwksServer, makeKey, sign } from "./helpers.js";

const HOSTS = ["acme.orgs.test", "org-a-instance"];

/** Listen on 127.0.0.1 (a free port). @param {import("node:http").RequestListener} listener */
async function listen(listener) {
  const server = createServer(listener);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return server;
}

describe("the request guard", () => {
  let key, jwks, options, servers, token, otherOrgToken;
  const echo = (req, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ path: req.url, claims: req.orgClaims ?? null }));
  };

  before(async () => {
    key = await makeKey("ES256", "k1");
    jwks = await jwksServer([key]);
    const verifier = new OrgTokenVerifier({
      jwksUrl: jwks.url,
      issuer: ISSUER,
      audience: orgAudience(ORG_ID),
      orgId: ORG_ID,
    });
    options = { verifier, allowedHosts: new Set(HOSTS) };
    token = await sign(key);
    otherOrgToken = await sign(key, claims({}, "org-b"));
    servers = {
      handler: await listen(guardHandler(echo, options)),
      // Express-style: the middleware, then the route, as Express chains them.
      middleware: await listen((req, res) =>
        guardMiddleware(options)(req, res, () => echo(req, res)),
      ),
    };
  });
  after(async () => {
    for (const server of Object.values(servers)) server.close();
    await jwks.close();
  });

  for (const kind of ["handler", "middleware"]) {
    test(`${kind}: a valid token for this org on one of its hosts reaches the handler with its claims`, async () => {
      const { port } = servers[kind].address();
      const answer = await get(port, "/api/v1/me?x=1", {
        Host: "ACME.orgs.test:8443",
        Authorization: `Bearer ${token}`,
      });
      assert.equal(answer.status, 200);
      assert.equal(answer.body.claims.org_id, ORG_ID);
      const internal = await get(port, "/x", {
        Host: "org-a-instance:8000",
        Authorization: `Bearer ${token}`,
      });
      assert.equal(internal.status, 200);
    });

    test(`${kind}: no token, a bad token, another org's token are 401 problems with a challenge`, async () => {
      const { port } = servers[kind].address();
      const none = await get(port, "/api/v1/me", { Host: HOSTS[0] });
      assert.equal(none.status, 401);
      assert.equal(none.headers["content-type"], "application/problem+json");
      assert.equal(none.headers["www-authenticate"], "Bearer");
      assert.equal(none.body.code, "invalid_token");
      for (const bad of [otherOrgToken, "garbage", `${token}x`]) {
        const answer = await get(port, "/api/v1/me", {
          Host: HOSTS[0],
          Authorization: `Bearer ${bad}`,
        });
        assert.equal(answer.status, 401, bad);
        assert.equal(answer.headers["www-authenticate"], 'Bearer error="invalid_token"');
        assert.equal(answer.body.type, "https://orgplane.dev/problems/invalid_token");
        assert.ok(
          !JSON.stringify(answer.body).includes(bad.slice(0, 20)) || bad === "garbage",
          "the token is not echoed",
        );
      }
      const basic = await get(port, "/api/v1/me", {
        Host: HOSTS[0],
        Authorization: `Basic ${token}`,
      });
      assert.equal(basic.status, 401);
    });

    test(`${kind}: a foreign Host is 421 misdirected_request even with a valid token; a malformed one 400`, async () => {
      const { port } = servers[kind].address();
      const foreign = await get(port, "/api/v1/me", {
        Host: "other.orgs.test",
        Authorization: `Bearer ${token}`,
      });
      assert.equal(foreign.status, 421);
      assert.equal(foreign.body.code, "misdirected_request");
      const malformed = await get(port, "/api/v1/me", {
        Host: "acme.orgs.test:99999",
        Authorization: `Bearer ${token}`,
      });
      assert.equal(malformed.status, 400);
      assert.equal(malformed.body.code, "invalid_host");
    });

    test(`${kind}: /healthz and /readyz need neither a token nor a known Host`, async () => {
      const { port } = servers[kind].address();
      for (const path of ["/healthz", "/readyz"]) {
        const answer = await get(port, path, { Host: "10.1.2.3:8000" });
        assert.equal(answer.status, 200, path);
        assert.equal(answer.body.claims, null);
      }
      const sub = await get(port, "/healthz/x", { Host: "10.1.2.3:8000" });
      assert.equal(sub.status, 421, "only the exact probe paths are exempt");
      const malformed = await get(port, "/healthz", { Host: "a b" });
      assert.equal(malformed.status, 400, "the Host syntax is checked before everything");
      assert.equal(malformed.body.code, "invalid_host");
    });
  }

  test("fetch-style: refuses and accepts like the Node adapters", async () => {
    const handler = guardFetch(
      (request, orgClaims) => Response.json({ sub: orgClaims?.sub ?? null }),
      options,
    );
    const ok = await handler(
      new Request("http://acme.orgs.test/api/v1/me", {
        headers: { authorization: `Bearer ${token}` },
      }),
    );
    assert.equal(ok.status, 200);
    assert.deepEqual(await ok.json(), { sub: "user-1" });
    const foreign = await handler(
      new Request("http://evil.test/api/v1/me", { headers: { authorization: `Bearer ${token}` } }),
    );
    assert.equal(foreign.status, 421);
    assert.equal(foreign.headers.get("content-type"), "application/problem+json");
    const other = await handler(
      new Request("http://acme.orgs.test/api/v1/me", {
        headers: { authorization: `Bearer ${otherOrgToken}` },
      }),
    );
    assert.equal(other.status, 401);
    const probe = await handler(new Request("http://10.0.0.1:8000/readyz"));
    assert.deepEqual(await probe.json(), { sub: null });
  });

  test("Hono: the middleware refuses, or hands the claims to the route", async () => {
    const app = new Hono();
    app.use(guardHono(options));
    app.get("/api/v1/me", (c) => c.json(c.get("orgClaims")));
    app.get("/healthz", (c) => c.json({ claims: c.get("orgClaims") }));
    const me = await app.request("http://acme.orgs.test/api/v1/me", {
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal(me.status, 200);
    assert.equal((await me.json()).org_id, ORG_ID);
    const other = await app.request("http://acme.orgs.test/api/v1/me", {
      headers: { authorization: `Bearer ${otherOrgToken}` },
    });
    assert.equal(other.status, 401);
    assert.equal((await other.json()).code, "invalid_token");
    const foreign = await app.request("http://evil.test/api/v1/me", {
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal(foreign.status, 421);
    assert.deepEqual(await (await app.request("http://10.0.0.1/healthz")).json(), { claims: null });
  });

  test(
    "Bun.serve: a guarded fetch handler over real HTTP",
    { skip: typeof globalThis.Bun === "undefined" ? "runs under Bun only" : false },
    async () => {
      const server = globalThis.Bun.serve({
        port: 0,
        hostname: "127.0.0.1",
        fetch: guardFetch(
          (request, orgClaims) => Response.json({ sub: orgClaims?.sub ?? null }),
          options,
        ),
      });
      try {
        const ok = await get(server.port, "/api/v1/me", {
          Host: "acme.orgs.test",
          Authorization: `Bearer ${token}`,
        });
        assert.deepEqual([ok.status, ok.body], [200, { sub: "user-1" }]);
        const foreign = await get(server.port, "/api/v1/me", {
          Host: "evil.test",
          Authorization: `Bearer ${token}`,
        });
        assert.equal(foreign.status, 421);
        const other = await get(server.port, "/api/v1/me", {
          Host: "acme.orgs.test",
          Authorization: `Bearer ${otherOrgToken}`,
        });
        assert.equal(other.status, 401);
      } finally {
        server.stop(true);
      }
    },
  );

  test("a verifier that throws unexpectedly is a 401, not a crash", async () => {
    const broken = {
      verify: async () => {
        throw new TypeError("boom");
      },
    };
    const verdict = await checkRequest(
      { path: "/x", host: HOSTS[0], authorization: "Bearer abc" },
      { verifier: broken, allowedHosts: HOSTS },
    );
    assert.equal(verdict.ok, false);
    assert.equal(verdict.status, 401);
  });

  test("Host syntax: RFC 9110 host and port, several Host headers refused", async () => {
    for (const good of ["a.b", "a.b:80", "[::1]:8000", "127.0.0.1", "x:0"])
      assert.ok(hostIsValid(good), good);
    for (const bad of ["a b", "a:b", "a:65536", "a:1:2", `a:${"9".repeat(5000)}`])
      assert.ok(!hostIsValid(bad), bad);
    const twice = await checkRequest(
      { path: "/x", host: HOSTS[0], authorization: "", hostCount: 2 },
      options,
    );
    assert.equal(twice.status, 400);
  });
});
