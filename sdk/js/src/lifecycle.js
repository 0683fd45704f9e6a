/**
 * Graceful stop (contract v1): on SIGTERM (or SIGINT) an instance stops heartbeating, stops
 * accepting connections, lets requests in flight finish, and is gone within 10 s.
 *
 * @module
 */

/** The contract's deadline between SIGTERM and the end of the process. */
export const STOP_DEADLINE_MS = 10_000;

/**
 * @typedef {object} StopOptions
 * @property {{ stop(): unknown }} [sender] the heartbeat sender to stop first
 * @property {number} [graceMs] how long requests in flight may take (default 8 s, under the deadline)
 * @property {string[]} [signals] default SIGTERM, SIGINT
 * @property {() => void} [onStopping] called as the stop begins (e.g. make /readyz answer 503)
 */

/**
 * Close `server` gracefully: no new connections, idle keep-alive connections closed at once
 * and busy ones as soon as they go idle (checked every 50 ms: Bun keeps a connection that
 * finished its response open until its keep-alive timeout), any left after `graceMs` cut.
 * @param {import("node:http").Server} server
 * @param {number} [graceMs]
 * @returns {Promise<void>}
 */
export function closeServer(server, graceMs = 8_000) {
  return new Promise((resolve) => {
    const force = setTimeout(() => server.closeAllConnections(), graceMs);
    const idle = setInterval(() => server.closeIdleConnections(), 50);
    force.unref();
    idle.unref();
    server.close(() => {
      clearTimeout(force);
      clearInterval(idle);
      resolve();
    });
    server.closeIdleConnections();
  });
}

/**
 * Resolve once one of `signals` arrived and `server` (and the sender) stopped. The process
 * then exits by itself when nothing else holds it; call `process.exit()` to be sure.
 * @param {import("node:http").Server} server
 * @param {StopOptions} [options]
 * @returns {Promise<string>} the signal's name
 */
export function serveUntilSignal(server, options = {}) {
  const signals = options.signals ?? ["SIGTERM", "SIGINT"];
  return new Promise((resolve) => {
    /** @param {string} signal */
    const stop = async (signal) => {
      for (const sig of signals) process.removeListener(sig, stop);
      options.onStopping?.();
      await options.sender?.stop();
      await closeServer(server, options.graceMs);
      resolve(signal);
    };
    for (const sig of signals) process.once(sig, stop);
  });
}
