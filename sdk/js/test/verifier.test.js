import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { UnsecuredJWT, SignJWT } from "jose";

import { orgAudience } from "../src/contract.js";
import { InvalidToken, OrgTokenVerifier } from "../src/verifier.js";
import { ISSUER, ORG_ID, claims, jwksServer, makeKey, sign } from "./helpers.js";

/** @param {Promise<unknown>} promise @param {RegExp} reason */
async function refused(promise, reason) {
  await assert.rejects(promise, (err) => {
    assert.ok(err instanceof InvalidToken, `not InvalidToken: ${err}`);
    assert.equal(err.code, "invalid_token");
    assert.match(err.reason, reason);
    return true;
  });
}

describe("OrgTokenVerifier", () => {
  let es, ed, jwks;
  /** @type {OrgTokenVerifier} */
  let verifier;
  const now = () => Math.floor(Date.now() / 1000);

  before(async () => {
    es = await makeKey("ES256", "k-es");
    ed = await makeKey("EdDSA", "k-ed");
    jwks = await jwksServer([es, ed]);
    verifier = new OrgTokenVerifier({
      jwksUrl: jwks.url,
      issuer: ISSUER,
      audience: orgAudience(ORG_ID),
      orgId: ORG_ID,
    });
  });
  after(() => jwks.close());

  test("accepts ES256 and EdDSA org tokens for its org and returns their claims", async () => {
    for (const key of [es, ed]) {
      const got = await verifier.verify(await sign(key, claims({ sub: `user-${key.alg}` })));
      assert.equal(got.sub, `user-${key.alg}`);
      assert.equal(got.org_id, ORG_ID);
    }
  });

  test("refuses other algorithms before fetching anything: HS256, none, RS256", async () => {
    const fetches = jwks.fetches;
    const hs = await new SignJWT(claims())
      .setProtectedHeader({ alg: "HS256", kid: "k-es", typ: "at+jwt" })
      .sign(new Uint8Array(32));
    await refused(verifier.verify(hs), /algorithm not allowed/);
    const none = new UnsecuredJWT(claims()).encode();
    await refused(verifier.verify(none), /algorithm not allowed/);
    const forgedHeader = Buffer.from(
      JSON.stringify({ alg: "RS256", kid: "k-es", typ: "at+jwt" }),
    ).toString("base64url");
    const good = await sign(es);
    await refused(
      verifier.verify(`${forgedHeader}.${good.split(".")[1]}.${good.split(".")[2]}`),
      /algorithm not allowed/,
    );
    assert.equal(jwks.fetches, fetches);
  });

  test("requires typ at+jwt and refuses any crit header", async () => {
    await refused(verifier.verify(await sign(es, claims(), { typ: "JWT" })), /wrong token type/);
    assert.ok(await verifier.verify(await sign(es, claims(), { typ: "application/at+jwt" })));
    await refused(
      verifier.verify(await sign(es, claims(), { crit: ["b64"], b64: true })),
      /critical/,
    );
  });

  test("refuses another issuer, another audience, another org", async () => {
    await refused(
      verifier.verify(await sign(es, claims({ iss: "http://evil.test" }))),
      /rejected: JWTClaimValidationFailed/,
    );
    await refused(
      verifier.verify(await sign(es, claims({ aud: orgAudience("org-b") }))),
      /rejected: JWTClaimValidationFailed/,
    );
    // Right audience, but the org_id claim names another org.
    await refused(verifier.verify(await sign(es, claims({ org_id: "org-b" }))), /another org/);
  });

  test("checks exp and nbf with 30 s of leeway, and requires every contract claim", async () => {
    assert.ok(await verifier.verify(await sign(es, claims({ exp: now() - 20 }))));
    await refused(verifier.verify(await sign(es, claims({ exp: now() - 60 }))), /JWTExpired/);
    assert.ok(await verifier.verify(await sign(es, claims({ nbf: now() + 20 }))));
    await refused(
      verifier.verify(await sign(es, claims({ nbf: now() + 60 }))),
      /JWTClaimValidationFailed/,
    );
    for (const name of ["exp", "iat", "nbf", "sub", "org_id", "org_role"]) {
      const payload = claims();
      delete payload[name];
      await refused(verifier.verify(await sign(es, payload)), /rejected|another org|role/);
    }
    await refused(verifier.verify(await sign(es, claims({ org_role: "root" }))), /role/);
  });

  test("refuses a bad signature, a token signed by an unknown key, junk and oversized tokens", async () => {
    const token = await sign(es);
    const other = await makeKey("ES256", "k-es");
    const [, payload] = (await sign(other)).split(".");
    const [header, , signature] = token.split(".");
    await refused(
      verifier.verify(`${header}.${payload}.${signature}`),
      /rejected: JWSSignatureVerificationFailed/,
    );
    await refused(verifier.verify("a.b"), /compact/);
    await refused(verifier.verify("!!.e30.e30"), /malformed header/);
    await refused(verifier.verify(`${token}${"A".repeat(9000)}`), /too long/);
    await refused(verifier.verify(await sign(es, claims(), { kid: "../../etc" })), /bad key id/);
  });
});

/**
 * A JWKS server with `keys` and a verifier of it, both gone when the test ends.
 * @param {import("node:test").TestContext} t
 * @param {Awaited<ReturnType<typeof makeKey>>[]} keys
 * @param {Partial<import("../src/verifier.js").VerifierOptions>} [options]
 */
async function verifierOf(t, keys, options = {}) {
  const jwks = await jwksServer(keys);
  t.after(() => jwks.close());
  const verifier = new OrgTokenVerifier({
    jwksUrl: jwks.url,
    issuer: ISSUER,
    audience: orgAudience(ORG_ID),
    orgId: ORG_ID,
    ...options,
  });
  return { jwks, verifier };
}

describe("OrgTokenVerifier key rotation and outages", () => {
  test("an unknown kid refetches the JWKS once, then the rotated key verifies", async (t) => {
    const old = await makeKey("ES256", "old");
    const rotated = await makeKey("EdDSA", "new");
    const { jwks, verifier } = await verifierOf(t, [old], { refetchIntervalMs: 0 });
    assert.ok(await verifier.verify(await sign(old)));
    assert.ok(await verifier.verify(await sign(old)));
    assert.equal(jwks.fetches, 1, "known keys are cached");
    jwks.keys = [old, rotated];
    assert.equal(
      (await verifier.verify(await sign(rotated, claims({ sub: "after-rotation" })))).sub,
      "after-rotation",
    );
    assert.equal(jwks.fetches, 2);
  });

  test("refetches for unknown kids are rate limited", async (t) => {
    const key = await makeKey("ES256", "only");
    const { jwks, verifier } = await verifierOf(t, [key], { refetchIntervalMs: 60_000 });
    assert.ok(await verifier.verify(await sign(key)));
    const stranger = await makeKey("ES256", "stranger");
    for (let i = 0; i < 5; i += 1)
      await refused(verifier.verify(await sign(stranger)), /rejected: JWKSNoMatchingKey/);
    assert.equal(jwks.fetches, 1);
  });

  test("cached keys keep verifying while the JWKS cannot be fetched", async (t) => {
    const key = await makeKey("ES256", "k");
    const { jwks, verifier } = await verifierOf(t, [key], { cacheMaxAgeMs: 0 });
    assert.ok(await verifier.verify(await sign(key)));
    jwks.down = true;
    assert.ok(await verifier.verify(await sign(key)));
    assert.ok(jwks.fetches >= 2, "the stale set was refetched");
    assert.match(verifier.lastError, /JOSEError/);
    assert.equal(await verifier.refresh(), true);
  });

  test("a JWKS that never answered refuses every token, and says why", async (t) => {
    const key = await makeKey("ES256", "k");
    const { jwks, verifier } = await verifierOf(t, [key]);
    jwks.down = true;
    await refused(verifier.verify(await sign(key)), /rejected/);
    assert.equal(await verifier.refresh(), false);
    assert.notEqual(verifier.lastError, "");
  });

  test("leeway above the contract's 30 s is refused", () => {
    assert.throws(
      () =>
        new OrgTokenVerifier({
          jwksUrl: "http://127.0.0.1:1/",
          issuer: ISSUER,
          audience: "a",
          orgId: ORG_ID,
          leewaySeconds: 31,
        }),
      RangeError,
    );
  });
});
