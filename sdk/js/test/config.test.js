import assert from "node:assert/strict";
import { hostname } from "node:os";
import { test } from "node:test";

import { ConfigError, allowedHosts, configFromEnv, normalizeHost } from "../src/config.js";
import { Env, orgAudience } from "../src/contract.js";

const BASE = {
  [Env.ORG_ID]: "org-a",
  [Env.INSTANCE_CREDENTIAL]: "x".repeat(32),
  [Env.CONTROL_PLANE_URL]: "http://cp:8080/",
  [Env.HOSTNAMES]: "Acme.Orgs.Test., b.test:443",
  [Env.INTERNAL_HOSTS]: "orgplane-acme-1",
  [Env.HEARTBEAT_INTERVAL]: "2",
};

test("reads the contract's variables with the same defaults as org_instance", () => {
  const config = configFromEnv(BASE);
  assert.equal(config.controlPlaneUrl, "http://cp:8080");
  assert.equal(config.jwksUrl, "http://cp:8080/.well-known/jwks.json");
  assert.equal(config.issuer, "http://cp:8080");
  assert.equal(config.audience, orgAudience("org-a"));
  assert.deepEqual(config.hostnames, ["acme.orgs.test", "b.test"]);
  assert.equal(config.heartbeatInterval, 2);
  assert.equal(config.port, 8000);
  assert.match(config.instanceId, /^[0-9a-f]{32}$/);
  const hosts = allowedHosts(config);
  for (const h of [
    "acme.orgs.test",
    "b.test",
    "orgplane-acme-1",
    "localhost",
    "127.0.0.1",
    "::1",
    normalizeHost(hostname()),
  ]) {
    assert.ok(hosts.has(h), h);
  }
  assert.ok(!hosts.has("0.0.0.0"));
});

test("names every problem at once and never echoes the credential", () => {
  const env = {
    ...BASE,
    [Env.ORG_ID]: "a b",
    [Env.INSTANCE_CREDENTIAL]: "short-secret",
    [Env.PORT]: "99999",
    [Env.HEARTBEAT_INTERVAL]: "0",
    [Env.REDIS_NAMESPACE]: "org:other",
  };
  assert.throws(
    () => configFromEnv(env),
    (err) => {
      assert.ok(err instanceof ConfigError);
      for (const name of [Env.ORG_ID, Env.INSTANCE_CREDENTIAL, Env.PORT, Env.HEARTBEAT_INTERVAL])
        assert.match(err.message, new RegExp(name));
      assert.ok(!err.message.includes("short-secret"));
      return true;
    },
  );
  assert.throws(
    () => configFromEnv({ [Env.ORG_ID]: "a", [Env.INSTANCE_CREDENTIAL]: "x".repeat(16) }),
    /CONTROL_PLANE_URL/,
  );
});

test("normalizes hosts as org_instance does", () => {
  assert.equal(normalizeHost(" Example.COM.:8080 "), "example.com");
  assert.equal(normalizeHost("[::1]:8000"), "::1");
  assert.equal(normalizeHost("::1"), "::1");
});
