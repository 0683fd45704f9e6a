// A process that only heartbeats (for heartbeat.test.js), and holds a timer: SIGTERM must end it.
import { HeartbeatSender } from "../src/heartbeat.js";

const sender = new HeartbeatSender({
  config: {
    controlPlaneUrl: process.argv[2],
    instanceCredential: "instance-credential-0123456789",
    orgId: "org-a",
    instanceId: "child",
    version: "0",
    heartbeatInterval: 0.05,
  },
});
setInterval(() => {}, 60_000); // something else keeps the process alive
await sender.start();
