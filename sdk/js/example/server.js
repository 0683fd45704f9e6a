// An org instance in one file: Node's http, @orgplane/instance-sdk, nothing else.
//
// Configured by the contract's environment (ORGPLANE_*, set by the provisioner). Serves
// GET /healthz, GET /readyz (503 while stopping) and GET /api/v1/me (the org token's claims);
// every request but the probes needs this org's token on one of its hosts. Heartbeats to the
// control plane; SIGTERM stops it within the contract's 10 s.
import { createServer } from "node:http";

import {
  HeartbeatSender,
  OrgTokenVerifier,
  configFromEnv,
  guardHandler,
  guardOptions,
  serveUntilSignal,
} from "@orgplane/instance-sdk";

/** One JSON log line on stdout (never a token or the credential). */
const log = (event, fields = {}) =>
  console.log(JSON.stringify({ event, ...fields, ts: new Date().toISOString() }));

const config = configFromEnv();
const verifier = new OrgTokenVerifier(config);
const sender = new HeartbeatSender({ config, log, stopSignals: [] });
let stopping = false;
let requests = 0;

/** @param {import("node:http").ServerResponse} res @param {number} status @param {unknown} body */
function json(res, status, body, type = "application/json") {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": type, "content-length": Buffer.byteLength(text) });
  res.end(text);
}

const app = guardHandler(
  (req, res) => {
    requests += 1;
    const path = (req.url ?? "/").split("?", 1)[0];
    if (path === "/healthz") return json(res, 200, { status: "ok" });
    if (path === "/readyz")
      return json(res, stopping ? 503 : 200, { status: stopping ? "stopping" : "ready" });
    if (req.method === "GET" && path === "/api/v1/me") return json(res, 200, req.orgClaims);
    const status = 404;
    json(
      res,
      status,
      {
        type: "https://orgplane.dev/problems/not_found",
        title: "Not found",
        status,
        detail: "No such route.",
        code: "not_found",
      },
      "application/problem+json",
    );
  },
  { ...guardOptions(config, verifier), log },
);

const server = createServer(app);
server.listen(config.port, config.bindHost, () => {
  log("listening", { port: config.port, org_id: config.orgId });
  sender.options.status = () => ({ usage: { requests } });
  sender.start();
});

const signal = await serveUntilSignal(server, { sender, onStopping: () => (stopping = true) });
log("stopped", { signal });
process.exit(0);
