import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { describe, test } from "node:test";

import {
  CONTRACT_VERSION,
  HEARTBEAT_PATH,
  heartbeatBackoffCap,
  longestHeartbeatGap,
} from "../src/contract.js";
import {
  HeartbeatRefused,
  HeartbeatSender,
  backoffDelay,
  firstBeatDelay,
} from "../src/heartbeat.js";
import { serve } from "./helpers.js";

const CREDENTIAL = "instance-credential-0123456789";

/**
 * A control plane stand-in: records heartbeats, answers with `answer(n)` (n from 1).
 * @param {(n: number) => { status: number, body: unknown }} answer
 */
async function controlPlane(answer) {
  const beats = [];
  const http = await serve((req, res, body) => {
    beats.push({
      method: req.method,
      path: req.url,
      auth: req.headers.authorization,
      body: JSON.parse(body || "null"),
    });
    const { status, body: out } = answer(beats.length);
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(out));
  });
  return { beats, url: http.url, close: http.close };
}

const accepted = (interval) => ({
  status: 200,
  body: { accepted: true, config_version: 1, interval, limits: {}, contract_version: 1 },
});

function sender(url, extra = {}) {
  return new HeartbeatSender({
    config: {
      controlPlaneUrl: url,
      instanceCredential: CREDENTIAL,
      orgId: "org-a",
      instanceId: "i-1",
      version: "1.2.3",
      heartbeatInterval: 0.05,
    },
    stopSignals: [],
    ...extra,
  });
}

/** Until `check()` holds, at most `ms`. */
async function until(check, ms = 5000) {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("heartbeat sender", () => {
  test("posts the contract's body with the instance credential and follows the answer's interval", async () => {
    const cp = await controlPlane(() => accepted(0.07));
    const hb = sender(cp.url, {
      status: () => ({ usage: { requests: 5 }, redis_ok: false, status: "degraded" }),
    });
    try {
      const answer = await hb.beat();
      assert.equal(answer.accepted, true);
      await hb.beat();
      const [first, second] = cp.beats;
      assert.equal(first.method, "POST");
      assert.equal(first.path, HEARTBEAT_PATH);
      assert.equal(first.auth, `Bearer ${CREDENTIAL}`);
      assert.equal(first.body.contract_version, CONTRACT_VERSION);
      assert.deepEqual(
        {
          org: first.body.org_id,
          instance: first.body.instance_id,
          version: first.body.version,
          seq: first.body.seq,
          second: second.body.seq,
        },
        { org: "org-a", instance: "i-1", version: "1.2.3", seq: 1, second: 2 },
      );
      assert.equal(first.body.status, "degraded");
      assert.deepEqual(first.body.usage, { requests: 5 });
      assert.ok(!Number.isNaN(Date.parse(first.body.started_at)));
      assert.equal(hb.interval, 0.07);
      assert.equal(hb.accepted, 2);
    } finally {
      await cp.close();
    }
  });

  test("an unsupported contract version or a refused credential is a HeartbeatRefused with its code", async () => {
    const cp = await controlPlane(() => ({
      status: 409,
      body: { code: "contract_version_unsupported", supported: [2] },
    }));
    try {
      await assert.rejects(
        sender(cp.url).beat(),
        (err) =>
          err instanceof HeartbeatRefused &&
          err.status === 409 &&
          err.code === "contract_version_unsupported",
      );
    } finally {
      await cp.close();
    }
  });

  test("a control plane that refuses the contract_version field gets heartbeats without it", async () => {
    const cp = await controlPlane((n) =>
      n === 1
        ? {
            status: 400,
            body: {
              code: "validation_failed",
              detail: "Object contains unknown field `contract_version`",
            },
          }
        : accepted(0.05),
    );
    const hb = sender(cp.url);
    try {
      assert.equal((await hb.beat()).accepted, true);
      await hb.beat();
      assert.deepEqual(
        cp.beats.map((b) => "contract_version" in b.body),
        [true, false, false],
      );
      assert.deepEqual(
        cp.beats.map((b) => b.body.seq),
        [1, 2, 3],
      );
    } finally {
      await cp.close();
    }
  });

  test("another 400 is a failure, and contract_version stays", async () => {
    const cp = await controlPlane(() => ({
      status: 400,
      body: { code: "validation_failed", detail: "seq must be positive" },
    }));
    const hb = sender(cp.url);
    try {
      await assert.rejects(
        hb.beat(),
        (err) => err instanceof HeartbeatRefused && err.status === 400,
      );
      assert.equal(cp.beats.length, 1);
      assert.equal(hb.sendsContractVersion, true);
    } finally {
      await cp.close();
    }
  });

  test("the loop retries while the control plane fails, resumes, and stops when asked", async () => {
    // Three failures, then accepted answers.
    const cp = await controlPlane((n) =>
      n <= 3 ? { status: 503, body: { code: "unavailable" } } : accepted(0.05),
    );
    const events = [];
    const hb = sender(cp.url, { log: (event, fields) => events.push({ event, fields }) });
    try {
      const stopped = hb.start();
      await until(() => cp.beats.length >= 6);
      await hb.stop();
      await stopped;
      const seen = cp.beats.length;
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(cp.beats.length, seen, "no beat after stop");
      assert.deepEqual(
        events.slice(0, 4).map((e) => e.event),
        ["heartbeat failed", "heartbeat failed", "heartbeat failed", "heartbeat resumed"],
      );
      assert.equal(hb.failures, 0);
      assert.ok(!JSON.stringify(events).includes(CREDENTIAL), "the credential is never logged");
    } finally {
      await cp.close();
    }
  });

  test("backoff doubles up to the contract's cap, with ±10% jitter", () => {
    const low = () => 0;
    const high = () => 0.9999999;
    const mid = () => 0.5;
    assert.equal(backoffDelay(10, 0, mid), 10);
    assert.equal(backoffDelay(10, 1, mid), 20);
    assert.equal(backoffDelay(10, 2, mid), 40);
    assert.equal(backoffDelay(10, 3, mid), 60, "capped at MAX_HEARTBEAT_BACKOFF_SECONDS");
    assert.equal(backoffDelay(2, 10, mid), heartbeatBackoffCap(2));
    assert.equal(backoffDelay(2, 10, mid), 16, "8 intervals for short intervals");
    assert.ok(Math.abs(backoffDelay(10, 0, low) - 9) < 1e-9);
    assert.ok(backoffDelay(10, 99, high) <= longestHeartbeatGap(10));
    assert.ok(backoffDelay(10, 99, high) > 65.9);
  });

  test("a run's first beat is retried fast (0.5 s, 1 s, ...) while that is shorter than the interval", () => {
    const mid = () => 0.5;
    assert.deepEqual(
      [1, 2, 3, 4, 5].map((n) => firstBeatDelay(10, n, mid)),
      [0.5, 1, 2, 4, 8],
    );
    // Then the usual backoff, counting the failures after the fast retries.
    assert.deepEqual(
      [6, 7, 8].map((n) => firstBeatDelay(10, n, mid)),
      [20, 40, 60],
    );
    assert.equal(firstBeatDelay(0.2, 1, mid), 0.4);
  });

  test("SIGTERM stops the loop, then ends the process as Node would without a listener", async () => {
    const cp = await controlPlane(() => accepted(0.05));
    const script = fileURLToPath(new URL("./heartbeat-child.js", import.meta.url));
    const child = spawn(process.execPath, [script, cp.url], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    try {
      await until(() => cp.beats.length >= 3);
      child.kill("SIGTERM");
      const [code, signal] = await once(child, "exit");
      assert.deepEqual({ code, signal }, { code: null, signal: "SIGTERM" });
      const seen = cp.beats.length;
      await new Promise((r) => setTimeout(r, 150));
      assert.equal(cp.beats.length, seen);
    } finally {
      child.kill("SIGKILL");
      await cp.close();
    }
  });
});
