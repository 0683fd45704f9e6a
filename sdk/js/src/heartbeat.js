/**
 * The heartbeat loop of contract v1: report to the control plane, back off while it is away.
 *
 * The first heartbeat goes out at {@link HeartbeatSender#start}; then one every interval with
 * ±10% jitter (a fleet started together does not beat in step). The answer's `interval` is
 * followed from then on. A failure (no answer, or not 200) doubles the wait up to the
 * contract's cap ({@link heartbeatBackoffCap}); the first success returns to the interval.
 * Until one heartbeat of this run was accepted the instance is not `running` for the control
 * plane, so a failed first beat is retried after 0.5 s, 1 s, 2 s... while that is shorter than
 * the interval. Each heartbeat carries the next `seq` and `contract_version: 1`, and the
 * instance credential as Bearer token (never logged).
 *
 * An answer `via: "redis"` (the control plane would read heartbeats from Redis) is not
 * followed: this sender keeps posting, which the control plane always accepts.
 *
 * A control plane older than contract negotiation refuses the unknown `contract_version`
 * field with 400; the sender then leaves it out for the rest of the run (absent means 1).
 *
 * @module
 */

import {
  CONTRACT_VERSION,
  HEARTBEAT_JITTER,
  HEARTBEAT_PATH,
  heartbeatBackoffCap,
} from "./contract.js";

export const MIN_INTERVAL = 0.05;
export const MAX_INTERVAL = 3600;
/** The first retry of a run's first heartbeat; each further retry doubles it. */
export const FIRST_RETRY_SECONDS = 0.5;

/**
 * Seconds until the next heartbeat after `failures` failures in a row.
 * @param {number} interval
 * @param {number} failures
 * @param {() => number} [random] uniform in [0, 1)
 */
export function backoffDelay(interval, failures, random = Math.random) {
  const cap = heartbeatBackoffCap(interval);
  const base = failures === 0 ? interval : Math.min(cap, interval * 2 ** Math.min(failures, 16));
  return base * (1 - HEARTBEAT_JITTER + 2 * HEARTBEAT_JITTER * random());
}

/**
 * Seconds until the next attempt after `failures` (1 or more) failures before any heartbeat
 * of this run was accepted: doubling from 0.5 s while shorter than the interval, then
 * {@link backoffDelay} as if those fast retries had not been.
 * @param {number} interval
 * @param {number} failures
 * @param {() => number} [random]
 */
export function firstBeatDelay(interval, failures, random = Math.random) {
  const fast = FIRST_RETRY_SECONDS * 2 ** Math.min(Math.max(failures - 1, 0), 16);
  if (fast < interval) return fast * (1 - HEARTBEAT_JITTER + 2 * HEARTBEAT_JITTER * random());
  const fastRetries = Math.max(0, Math.ceil(Math.log2(interval / FIRST_RETRY_SECONDS)));
  return backoffDelay(interval, Math.max(0, failures - fastRetries), random);
}

/** The control plane answered, but not with an accepted heartbeat. */
export class HeartbeatRefused extends Error {
  /**
   * @param {number} status
   * @param {string} code the problem's `code` ("" when none)
   * @param {string} [text] the answer's body (its start)
   */
  constructor(status, code, text = "") {
    super(`control plane answered ${status} ${code}`.trim());
    this.name = "HeartbeatRefused";
    this.status = status;
    this.code = code;
    this.text = text;
  }
}

/**
 * @typedef {object} HeartbeatOptions
 * @property {Pick<import("./config.js").InstanceConfig, "controlPlaneUrl" | "instanceCredential" | "orgId" | "instanceId" | "version" | "heartbeatInterval">} config
 * @property {() => Partial<import("./contract.js").HeartbeatBody> | Promise<Partial<import("./contract.js").HeartbeatBody>>} [status]
 *   the instance's own fields (status, db_ok, redis_ok, usage, config_version); default: all ok
 * @property {(answer: import("./contract.js").HeartbeatAnswer) => void} [onAnswer] every accepted answer (limits!)
 * @property {(event: string, fields: Record<string, unknown>) => void} [log]
 * @property {typeof fetch} [fetch]
 * @property {() => number} [random]
 * @property {number} [timeoutMs] of one POST (default 10 s)
 * @property {NodeJS.Signals[]} [stopSignals] signals that stop the loop (default SIGTERM, SIGINT;
 *   [] for none). When nothing else listens for the signal, the sender raises it again once
 *   stopped, so the process still ends as Node ends it by default; with a listener of your own
 *   (`serveUntilSignal`) the rest of the stop is yours.
 */

/** Sends an instance's heartbeats; {@link start} runs the loop, {@link beat} is one POST. */
export class HeartbeatSender {
  /** @param {HeartbeatOptions} options */
  constructor(options) {
    this.options = options;
    this.url = options.config.controlPlaneUrl + HEARTBEAT_PATH;
    this.interval = options.config.heartbeatInterval;
    this.seq = 0;
    this.failures = 0;
    this.accepted = 0;
    /** Whether heartbeats carry `contract_version` (see the module's notes). */
    this.sendsContractVersion = true;
    this.startedAt = new Date().toISOString();
    /** @type {import("./contract.js").HeartbeatAnswer | null} */
    this.lastAnswer = null;
    this.running = false;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.timer = undefined;
    /** @type {((value: unknown) => void) | undefined} */
    this.wake = undefined;
    this.abort = new AbortController();
    this.stopped = Promise.resolve();
    /** @param {NodeJS.Signals} signal */
    this.onSignal = (signal) => {
      this.stop();
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    };
  }

  /** The next heartbeat body. @returns {Promise<import("./contract.js").HeartbeatBody>} */
  async body() {
    const { config, status } = this.options;
    const own = status ? await status() : {};
    this.seq += 1;
    return {
      status: "ok",
      db_ok: true,
      redis_ok: true,
      usage: {},
      ...own,
      org_id: config.orgId,
      instance_id: config.instanceId,
      version: config.version,
      started_at: this.startedAt,
      seq: this.seq,
      ...(this.sendsContractVersion ? { contract_version: CONTRACT_VERSION } : {}),
    };
  }

  /** Send one heartbeat and apply the answer; throws on failure. */
  async beat() {
    try {
      return await this.#post(await this.body());
    } catch (err) {
      if (!(
        err instanceof HeartbeatRefused &&
        err.status === 400 &&
        err.text.includes("contract_version") &&
        this.sendsContractVersion
      )) {
        throw err;
      }
      this.sendsContractVersion = false;
      this.options.log?.(
        "control plane predates contract negotiation: heartbeats go without contract_version",
        {},
      );
      return this.#post(await this.body());
    }
  }

  /** @param {import("./contract.js").HeartbeatBody} body */
  async #post(body) {
    const doFetch = this.options.fetch ?? fetch;
    const signal = AbortSignal.any([
      this.abort.signal,
      AbortSignal.timeout(this.options.timeoutMs ?? 10_000),
    ]);
    const response = await doFetch(this.url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        authorization: `Bearer ${this.options.config.instanceCredential}`,
      },
      body: JSON.stringify(body),
      signal,
      redirect: "manual",
    });
    if (response.status !== 200) {
      const text = (await response.text().catch(() => "")).slice(0, 2000);
      let code = "";
      try {
        code = String(JSON.parse(text)?.code ?? "").slice(0, 64);
      } catch {
        /* not a problem document */
      }
      throw new HeartbeatRefused(response.status, code, text);
    }
    const answer = /** @type {import("./contract.js").HeartbeatAnswer} */ (await response.json());
    const interval = answer?.interval;
    if (typeof interval === "number" && interval >= MIN_INTERVAL && interval <= MAX_INTERVAL) {
      this.interval = interval;
    }
    if (answer?.accepted) this.accepted += 1;
    this.lastAnswer = answer;
    this.options.onAnswer?.(answer);
    return answer;
  }

  /** Start the loop (the first beat at once); resolves when it stopped. */
  start() {
    if (this.running) return this.stopped;
    this.running = true;
    for (const sig of this.options.stopSignals ?? ["SIGTERM", "SIGINT"])
      process.once(sig, this.onSignal);
    this.stopped = this.#loop();
    return this.stopped;
  }

  async #loop() {
    const log = this.options.log ?? (() => {});
    const random = this.options.random ?? Math.random;
    while (this.running) {
      try {
        await this.beat();
        if (this.failures) log("heartbeat resumed", { after_failures: this.failures });
        this.failures = 0;
      } catch (err) {
        if (!this.running) break;
        this.failures += 1;
        log("heartbeat failed", {
          error: err instanceof Error ? `${err.name}: ${err.message}`.slice(0, 300) : String(err),
          failures: this.failures,
          seq: this.seq,
        });
      }
      const delay =
        this.failures && !this.accepted
          ? firstBeatDelay(this.interval, this.failures, random)
          : backoffDelay(this.interval, this.failures, random);
      if (!this.running) break;
      await new Promise((resolve) => {
        this.wake = resolve;
        this.timer = setTimeout(resolve, delay * 1000);
      });
    }
  }

  /** Stop the loop (an in-flight heartbeat is aborted); resolves when it stopped. */
  stop() {
    this.running = false;
    for (const sig of this.options.stopSignals ?? ["SIGTERM", "SIGINT"])
      process.removeListener(sig, this.onSignal);
    clearTimeout(this.timer);
    this.abort.abort();
    this.wake?.(undefined);
    return this.stopped;
  }
}
