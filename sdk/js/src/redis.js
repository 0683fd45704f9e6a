/**
 * The org's Redis namespace (contract v1): every key and channel an instance uses starts with
 * `org:<org id>:`. The org's Redis ACL user (in `ORGPLANE_REDIS_URL`) may touch nothing else,
 * so a key outside the namespace fails with `NOPERM`.
 *
 * Works with any client: `ioredis` takes the prefix as its `keyPrefix` option, node-redis
 * needs {@link RedisNamespace#key} around each key name.
 *
 * @module
 */

import { redisNamespace } from "./contract.js";

/** Keys and channels of one org. */
export class RedisNamespace {
  /** @param {string} orgId */
  constructor(orgId) {
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(orgId)) throw new RangeError("not an org id");
    this.orgId = orgId;
    /** `org:<org id>:`, the prefix of every key (ioredis's `keyPrefix`). */
    this.prefix = `${redisNamespace(orgId)}:`;
  }

  /**
   * The full name of the org's key or channel made of `parts` joined by `:`.
   * @param {...(string | number)} parts
   */
  key(...parts) {
    if (parts.length === 0) throw new RangeError("a key needs a name");
    return this.prefix + parts.join(":");
  }

  /**
   * A `SCAN`/`KEYS`/`PSUBSCRIBE` pattern for the org's keys matching `pattern` (glob
   * characters in the org id cannot occur: ids are letters, digits, `-` and `_`).
   * @param {string} [pattern]
   */
  pattern(pattern = "*") {
    return this.prefix + pattern;
  }

  /**
   * Whether `key` is one of this org's keys.
   * @param {string} key
   */
  owns(key) {
    return key.startsWith(this.prefix) && key.length > this.prefix.length;
  }

  /**
   * The key without the org's prefix (throws for another org's key).
   * @param {string} key
   */
  strip(key) {
    if (!this.owns(key)) throw new RangeError("not a key of this org");
    return key.slice(this.prefix.length);
  }
}
