// A process that only heartbeats (for heartbeat.test.js): SIGTERM must end it with code 0.
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
await sender.start();
