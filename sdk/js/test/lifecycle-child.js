// A server stopped by serveUntilSignal (for lifecycle.test.js): prints its port, then "slow"
// when a /slow request arrived (answered 300 ms later), then "stopped <signal>".
import { once } from "node:events";
import { createServer } from "node:http";

import { serveUntilSignal } from "../src/lifecycle.js";

const server = createServer((req, res) => {
  if (req.url === "/slow") {
    console.log("slow");
    setTimeout(() => res.end("done"), 300);
  } else {
    res.end("ok");
  }
});
server.listen(0, "127.0.0.1");
await once(server, "listening");
console.log(/** @type {import("node:net").AddressInfo} */ (server.address()).port);
const signal = await serveUntilSignal(server, {
  sender: { stop: () => console.log("sender stopped") },
});
console.log(`stopped ${signal}`);
process.exit(0);
