import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import { get } from "./helpers.js";

test("SIGTERM: the heartbeats stop, a request in flight is answered, the process exits 0", async () => {
  const script = fileURLToPath(new URL("./lifecycle-child.js", import.meta.url));
  const child = spawn(process.execPath, [script], { stdio: ["ignore", "pipe", "inherit"] });
  const lines = createInterface({
    input: /** @type {import("node:stream").Readable} */ (child.stdout),
  })[Symbol.asyncIterator]();
  const next = async () => (await lines.next()).value;
  try {
    const port = Number(await next());
    const slow = get(port, "/slow");
    assert.equal(await next(), "slow");
    child.kill("SIGTERM");
    assert.equal(await next(), "sender stopped");
    const answer = await slow;
    assert.deepEqual([answer.status, answer.body], [200, "done"]);
    assert.equal(await next(), "stopped SIGTERM");
    const [code] = await once(child, "exit");
    assert.equal(code, 0);
    await assert.rejects(get(port, "/"), /ECONNREFUSED/);
  } finally {
    child.kill("SIGKILL");
  }
});
