// Shared helpers for the cross-implementation tests: start and stop a real server process, connect
// official socket.io clients to it, and wait for things with a bound on every wait.
//
// The server under test is one of ferrio's binaries (target/release/ferrio or
// target/release/examples/testkit). FERRIO_TEST_SERVER=reference runs the Node.js reference
// (reference/testkit.js) instead, to check the tests' own expectations against Node's behaviour.
"use strict";

const { spawn } = require("node:child_process");
const fs = require("node:fs");
const http = require("node:http");
const net = require("node:net");
const path = require("node:path");
const { io } = require("socket.io-client");

const ROOT = path.resolve(__dirname, "..", "..");
const REFERENCE = process.env.FERRIO_TEST_SERVER === "reference";
const BINARIES = {
  ferrio: path.join(ROOT, "target", "release", "ferrio"),
  testkit: path.join(ROOT, "target", "release", "examples", "testkit"),
};

/** Default bound on a single wait, in milliseconds. */
const WAIT_MS = 5000;

/** Servers started by this process, killed on exit whatever happens to the tests. */
const running = new Set();
process.on("exit", () => {
  for (const child of running) {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
});

/** A free TCP port on 127.0.0.1 (asked from the OS, then released for the server to take). */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves with `promise`'s value, or rejects after `ms` with an error naming `what`. */
function within(ms, what, promise) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** An HTTP request to `url` without keep-alive, resolving with { status, headers, body }. */
function httpGet(url, headers = {}, method = "GET", body = null) {
  return within(
    WAIT_MS,
    `${method} ${url}`,
    new Promise((resolve, reject) => {
      const req = http.request(url, { method, headers, agent: false }, (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () =>
          resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() })
        );
        res.on("error", reject);
      });
      req.on("error", reject);
      req.setTimeout(WAIT_MS, () => req.destroy(new Error(`${method} ${url} timed out`)));
      req.end(body);
    })
  );
}

/**
 * Starts a server process and waits until it serves (log line "listening on" and GET /healthz
 * answering 200). `kind` is "testkit" (hub + test events) or "ferrio" (the hub alone).
 * Returns { url, port, logs(), stop(), exited }.
 */
async function startServer({ kind = "testkit", env = {}, readyMs = 20000 } = {}) {
  const port = await freePort();
  let cmd;
  let args = [];
  if (REFERENCE) {
    cmd = process.execPath;
    args = [path.join(__dirname, "reference", "testkit.js")];
    if (kind === "ferrio") args.push("--hub-only");
  } else {
    cmd = BINARIES[kind];
    if (!cmd) throw new Error(`unknown server kind ${kind}`);
    if (!fs.existsSync(cmd)) {
      throw new Error(`${cmd} does not exist: run cargo build --release --bins --examples first`);
    }
  }
  const childEnv = { ...process.env, RUST_LOG: process.env.RUST_LOG || "info" };
  for (const key of Object.keys(childEnv)) if (key.startsWith("FERRIO_")) delete childEnv[key];
  Object.assign(childEnv, { FERRIO_HOST: "127.0.0.1", FERRIO_PORT: String(port) }, env);
  for (const [key, value] of Object.entries(childEnv)) if (value === undefined) delete childEnv[key];

  const child = spawn(cmd, args, { env: childEnv, stdio: ["ignore", "pipe", "pipe"] });
  running.add(child);
  if (process.env.FERRIO_TEST_PIDFILE) {
    try {
      fs.appendFileSync(process.env.FERRIO_TEST_PIDFILE, `${child.pid}\n`);
    } catch {
      // the pid file is a safety net for scripts/test, not needed to run
    }
  }
  let output = "";
  let announced = false;
  const onData = (chunk) => {
    output += chunk.toString();
    if (output.length > 1_000_000) output = output.slice(-500_000);
    if (/listening on/.test(output)) announced = true;
  };
  child.stdout.on("data", onData);
  child.stderr.on("data", onData);
  const exited = new Promise((resolve) => {
    child.on("exit", (code, signal) => {
      running.delete(child);
      resolve({ code, signal });
    });
  });
  let done = false;
  exited.then(() => {
    done = true;
  });

  const url = `http://127.0.0.1:${port}`;
  const server = {
    url,
    port,
    child,
    exited,
    logs: () => output,
    /** SIGTERM, then SIGKILL if the process is still there after `graceMs`. */
    async stop(graceMs = 5000) {
      if (done) return exited;
      child.kill("SIGTERM");
      const ended = await within(graceMs, "the server to exit", exited).catch(() => null);
      if (ended) return ended;
      child.kill("SIGKILL");
      return exited;
    },
  };

  const deadline = Date.now() + readyMs;
  for (;;) {
    if (done) {
      throw new Error(`${cmd} exited before serving:\n${output}`);
    }
    if (announced) {
      try {
        const res = await httpGet(`${url}/healthz`);
        if (res.status === 200) return server;
      } catch {
        // not accepting yet
      }
    }
    if (Date.now() > deadline) {
      await server.stop(1000);
      throw new Error(
        `${cmd} did not serve within ${readyMs} ms (announced "listening on": ${announced}):\n${output}`
      );
    }
    await sleep(50);
  }
}

/** Clients created by `client()`, closed by `closeClients()`. */
const clients = new Set();

/**
 * A socket.io-client socket to `url` + `ns`, with reconnection off unless asked and a new
 * Manager each time unless `opts.forceNew === false`. It does not wait for the connection.
 */
function client(url, ns = "/", opts = {}) {
  const socket = io(url + (ns === "/" ? "" : ns), {
    forceNew: true,
    reconnection: false,
    timeout: WAIT_MS,
    ...opts,
  });
  clients.add(socket);
  return socket;
}

function closeClients() {
  for (const socket of clients) {
    socket.io.reconnection(false);
    socket.disconnect();
    if (socket.io.engine) socket.io.engine.close();
  }
  clients.clear();
}

/** The next `event` on `emitter` as an array of its arguments, within `ms`. */
function once(emitter, event, ms = WAIT_MS) {
  let handler;
  const p = new Promise((resolve) => {
    handler = (...args) => resolve(args);
    emitter.once(event, handler);
  });
  return within(ms, `event "${event}"`, p).finally(() => emitter.off(event, handler));
}

/** Connects `socket` and resolves with the `welcome` payload the testkit sends on connect. */
async function connected(socket, ms = WAIT_MS) {
  const welcome = once(socket, "welcome", ms);
  const result = await within(
    ms,
    "connect",
    new Promise((resolve, reject) => {
      if (socket.connected) return resolve();
      socket.once("connect", resolve);
      socket.once("connect_error", (err) => reject(new Error(`connect_error: ${err.message}`)));
    })
  );
  void result;
  return (await welcome)[0];
}

/** Connects `socket` without waiting for a welcome (for the hub-only binary). */
function connectOnly(socket, ms = WAIT_MS) {
  return within(
    ms,
    "connect",
    new Promise((resolve, reject) => {
      if (socket.connected) return resolve();
      socket.once("connect", resolve);
      socket.once("connect_error", (err) => reject(new Error(`connect_error: ${err.message}`)));
    })
  );
}

/** Emits `event` with `args` and resolves with all the ack's arguments (an array). */
function ackAll(socket, event, ...args) {
  return new Promise((resolve, reject) => {
    socket.timeout(WAIT_MS).emit(event, ...args, (err, ...response) => {
      if (err) reject(new Error(`no ack for "${event}" within ${WAIT_MS} ms`));
      else resolve(response);
    });
  });
}

/** Emits `event` with `args` and resolves with the ack's first argument (the hub's `{ok,…}`). */
async function ack(socket, event, ...args) {
  return (await ackAll(socket, event, ...args))[0];
}

/** Records every `event` received by `socket` (arguments arrays) into the returned array. */
function record(socket, event) {
  const got = [];
  socket.on(event, (...args) => got.push(args));
  return got;
}

/** Waits until `predicate()` is true, checking every 20 ms, at most `ms`. */
async function until(predicate, what, ms = WAIT_MS) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(20);
  }
}

/** Asks the testkit for the server-side disconnect reason of `id`, waiting until it is known. */
async function serverReason(asker, id, ms = WAIT_MS) {
  let last;
  await until(
    async () => {
      last = (await ack(asker, "disconnect-reason", id)).reason;
      return last !== null && last !== undefined;
    },
    `a server-side disconnect reason for ${id}`,
    ms
  );
  return last;
}

module.exports = {
  ROOT,
  REFERENCE,
  WAIT_MS,
  ack,
  ackAll,
  client,
  closeClients,
  connectOnly,
  connected,
  freePort,
  httpGet,
  once,
  record,
  serverReason,
  sleep,
  startServer,
  until,
  within,
};
