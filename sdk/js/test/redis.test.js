import assert from "node:assert/strict";
import { test } from "node:test";

import { RedisNamespace } from "../src/redis.js";

test("keys, patterns and ownership of one org's Redis namespace", () => {
  const ns = new RedisNamespace("org-a");
  assert.equal(ns.prefix, "org:org-a:");
  assert.equal(ns.key("sessions", 42), "org:org-a:sessions:42");
  assert.equal(ns.pattern("sessions:*"), "org:org-a:sessions:*");
  assert.ok(ns.owns("org:org-a:x"));
  assert.ok(!ns.owns("org:org-ab:x"), "another org whose id starts the same");
  assert.ok(!ns.owns("org:org-a:"));
  assert.equal(ns.strip("org:org-a:sessions:42"), "sessions:42");
  assert.throws(() => ns.strip("org:org-b:x"), RangeError);
  assert.throws(() => ns.key(), RangeError);
  for (const bad of ["", "a:b", "a*", "x".repeat(65)])
    assert.throws(() => new RedisNamespace(bad), RangeError, bad);
});
