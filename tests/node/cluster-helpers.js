// Helpers for the cluster tests: a real redis-server and nginx started on loopback by the test
// and stopped by PID, ferrio nodes joined to that Redis, and a few cluster-specific waits.
// Everything else (starting ferrio, clients, bounded waits) comes from helpers.js.
"use strict";

const { spawn, spawnSync } = require("node:child_process");
const fs = require("node:fs");
const net = require("node:net");
const os = require("node:os");
const path = require("node:path");
const h = require("./helpers");

/**
 * redis-server and nginx processes started here, stopped on exit whatever happens: SIGKILL for
 * Redis, SIGTERM for nginx (its master then stops its workers; SIGKILL would orphan them).
 */
const children = new Map();
process.on("exit", () => {
  for (const [child, signal] of children) {
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  }
});

function findBinary(name, extra = []) {
  for (const dir of [...(process.env.PATH || "").split(":"), "/usr/sbin", "/usr/local/sbin", "/sbin", ...extra]) {
    if (!dir) continue;
    const p = path.join(dir, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return null;
}

const REDIS_SERVER = findBinary("redis-server");
const NGINX = findBinary("nginx");

/** Why the cluster tests cannot run here, or null. Tests skip with this reason. */
function skipReason({ nginx = false } = {}) {
  if (h.REFERENCE) return "the Node.js reference testkit has no cluster mode";
  if (!REDIS_SERVER) return "redis-server is not installed";
  if (nginx && !NGINX) return "nginx is not installed";
  return null;
}

/** Spawns a tracked child; resolves `exited` with { code, signal }; keeps its last output. */
function track(cmd, args, { exitSignal = "SIGKILL", ...opts } = {}) {
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], ...opts });
  children.set(child, exitSignal);
  if (process.env.FERRIO_TEST_PIDFILE) {
    try {
      fs.appendFileSync(process.env.FERRIO_TEST_PIDFILE, `${child.pid}\n`);
    } catch {
      // a safety net only
    }
  }
  let output = "";
  const onData = (c) => {
    output += c.toString();
    if (output.length > 200_000) output = output.slice(-100_000);
  };
  child.stdout.on("data", onData);
  child.stderr.on("data", onData);
  let done = false;
  const exited = new Promise((resolve) => {
    child.on("exit", (code, signal) => {
      done = true;
      children.delete(child);
      resolve({ code, signal });
    });
  });
  return { child, exited, logs: () => output, isDone: () => done };
}

/** One RESP command over a fresh TCP connection; resolves with the raw reply text. */
function redisRaw(port, args, ms = 1000) {
  const body = `*${args.length}\r\n` + args.map((a) => `$${Buffer.byteLength(String(a))}\r\n${a}\r\n`).join("");
  return h.within(
    ms,
    `redis ${args[0]} on port ${port}`,
    new Promise((resolve, reject) => {
      const sock = net.connect({ host: "127.0.0.1", port }, () => sock.write(body));
      let got = "";
      sock.on("data", (d) => {
        got += d.toString();
        if (got.endsWith("\r\n")) {
          sock.destroy();
          resolve(got);
        }
      });
      sock.on("error", reject);
    })
  );
}

/**
 * A redis-server on 127.0.0.1 (a free port unless `port` is given), no persistence.
 * Returns { port, url, pid, stop(signal), start() (again, same port), logs() }.
 */
async function startRedis({ port } = {}) {
  port = port || (await h.freePort());
  const redis = { port, url: `redis://127.0.0.1:${port}`, proc: null };
  redis.start = async () => {
    const proc = track(REDIS_SERVER, [
      "--port", String(port),
      "--bind", "127.0.0.1",
      "--save", "",
      "--appendonly", "no",
    ]);
    redis.proc = proc;
    redis.pid = proc.child.pid;
    const deadline = Date.now() + 10000;
    for (;;) {
      if (proc.isDone()) throw new Error(`redis-server exited at start:\n${proc.logs()}`);
      try {
        if ((await redisRaw(port, ["PING"])).startsWith("+PONG")) return redis;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) {
        proc.child.kill("SIGKILL");
        throw new Error(`redis-server did not answer PING within 10 s:\n${proc.logs()}`);
      }
      await h.sleep(30);
    }
  };
  /** Sends `signal` and waits (bounded) for the process to end. */
  redis.stop = async (signal = "SIGTERM", ms = 5000) => {
    const proc = redis.proc;
    if (!proc || proc.isDone()) return;
    proc.child.kill(signal);
    const ended = await h.within(ms, "redis-server to exit", proc.exited).catch(() => null);
    if (!ended) {
      proc.child.kill("SIGKILL");
      await proc.exited;
    }
  };
  redis.logs = () => (redis.proc ? redis.proc.logs() : "");
  redis.numsub = async (channel) => {
    const raw = await redisRaw(port, ["PUBSUB", "NUMSUB", channel]);
    const m = raw.match(/:(\d+)\r\n$/);
    return m ? Number(m[1]) : NaN;
  };
  return redis.start();
}

let nodeCounter = 0;

/** A channel prefix no other test run uses (keeps parallel runs on one Redis apart). */
function uniquePrefix(label = "t") {
  return `ferrio-${label}-${process.pid}-${Date.now().toString(36)}`;
}

/**
 * A ferrio node (testkit by default) joined to `redis`, resolved once /readyz answers 200
 * (its bridge is connected and subscribed).
 */
async function startNode(redis, { prefix, id, kind = "testkit", env = {}, readyMs = 10000 } = {}) {
  nodeCounter += 1;
  const nodeId = id || `n${nodeCounter}-${process.pid}`;
  const server = await h.startServer({
    kind,
    env: {
      FERRIO_REDIS_URL: redis.url,
      FERRIO_NODE_ID: nodeId,
      FERRIO_REDIS_PREFIX: prefix || "socket.io",
      FERRIO_REQUEST_TIMEOUT_MS: "3000",
      ...env,
    },
  });
  server.nodeId = nodeId;
  await waitReady(server, 200, readyMs);
  return server;
}

/** Waits until GET /readyz on `server` answers `status`; resolves with the time it took (ms). */
async function waitReady(server, status = 200, ms = 10000) {
  const t0 = Date.now();
  await h.until(
    async () => {
      try {
        return (await h.httpGet(`${server.url}/readyz`)).status === status;
      } catch {
        return false;
      }
    },
    `GET ${server.url}/readyz to answer ${status}`,
    ms
  );
  return Date.now() - t0;
}

/** Waits until `count` members subscribe the request channel of `ns` under `prefix`. */
async function waitMembers(redis, prefix, count, ns = "/", ms = 10000) {
  const channel = `${prefix}-request#${ns}#`;
  await h.until(async () => (await redis.numsub(channel)) === count, `${count} subscribers on ${channel}`, ms);
}

/**
 * Waits until every node's room view includes every other node: a probe socket joins a room on
 * each node in turn, and every other node's list-rooms must show it. Catches a node whose
 * mirror is not yet connected to the others.
 */
async function waitMirror(servers, ms = 10000) {
  const probes = servers.map((s) => h.client(s.url, "/", { transports: ["websocket"] }));
  try {
    await Promise.all(probes.map((p) => h.connectOnly(p)));
    const room = `probe-${process.pid}-${Date.now()}`;
    for (let i = 0; i < probes.length; i++) await h.ack(probes[i], "join-room", room);
    await h.until(
      async () => {
        for (const p of probes) {
          const res = await h.ack(p, "list-rooms");
          const found = res.rooms.find((r) => r.room === room);
          if (!found || found.size !== probes.length) return false;
        }
        return true;
      },
      `every node to see a probe room of ${probes.length} members`,
      ms
    );
  } finally {
    for (const p of probes) p.disconnect();
  }
  // Let the probes' leave-room mirror messages pass before the test looks at the view.
  await h.until(
    async () => {
      const c = h.client(servers[0].url, "/", { transports: ["websocket"] });
      try {
        await h.connectOnly(c);
        const res = await h.ack(c, "list-rooms");
        return !res.rooms.some((r) => r.room.startsWith("probe-"));
      } finally {
        c.disconnect();
      }
    },
    "the probe room to disappear",
    ms
  );
}

/** A connected testkit client on `server` (websocket unless told), with its welcome payload. */
async function kitClient(server, { ns = "/", opts = {} } = {}) {
  const socket = h.client(server.url, ns, { transports: ["websocket"], ...opts });
  await h.connected(socket);
  return socket;
}

/** Records every `event` on each socket of `sockets`; returns a Map socket → [[args]]. */
function recordAll(sockets, event) {
  const map = new Map();
  for (const s of sockets) map.set(s, h.record(s, event));
  return map;
}

/** Waits until every socket in `map` has at least `n` recorded entries. */
async function untilEach(map, n, what, ms = h.WAIT_MS) {
  await h.until(() => [...map.values()].every((got) => got.length >= n), what, ms);
}

/** Percentile of a sorted numeric array. */
function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx];
}

/**
 * A real nginx from the repository's nginx.conf: the file is copied to a temp prefix directory
 * with the upstream ports and the listen port replaced by `upstreams` and `port`; nginx runs in
 * the foreground (`-g "daemon off;"`) so the test owns its PID.
 */
async function startNginx({ upstreams, port }) {
  const src = fs.readFileSync(path.join(h.ROOT, "nginx.conf"), "utf8");
  const prefix = fs.mkdtempSync(path.join(os.tmpdir(), "ferrio-nginx-"));
  // When nginx runs as root, its workers run as an unprivileged user and must reach the prefix.
  fs.chmodSync(prefix, 0o755);
  let conf = src.replace(/listen\s+127\.0\.0\.1:8080\b/g, `listen 127.0.0.1:${port}`);
  const servers = [...src.matchAll(/^\s*server\s+127\.0\.0\.1:(\d+)/gm)];
  if (servers.length !== upstreams.length) {
    throw new Error(`nginx.conf lists ${servers.length} upstream servers, the test has ${upstreams.length} nodes`);
  }
  servers.forEach((m, i) => {
    conf = conf.replace(new RegExp(`(^\\s*server\\s+127\\.0\\.0\\.1:)${m[1]}\\b`, "m"), `$1${upstreams[i]}`);
  });
  if (!conf.includes(`listen 127.0.0.1:${port}`)) throw new Error("nginx.conf: no `listen 127.0.0.1:8080` to replace");
  const confPath = path.join(prefix, "nginx.conf");
  fs.writeFileSync(confPath, conf);

  const check = spawnSync(NGINX, ["-t", "-p", prefix, "-c", confPath, "-e", "stderr"], { encoding: "utf8", timeout: 10000 });
  if (check.status !== 0) throw new Error(`nginx -t failed:\n${check.stderr}${check.stdout}`);

  const proc = track(NGINX, ["-p", prefix, "-c", confPath, "-e", "stderr", "-g", "daemon off;"], {
    exitSignal: "SIGTERM",
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 10000;
  for (;;) {
    if (proc.isDone()) throw new Error(`nginx exited at start:\n${proc.logs()}`);
    try {
      await h.within(1000, "nginx to accept", new Promise((resolve, reject) => {
        const s = net.connect({ host: "127.0.0.1", port }, () => {
          s.destroy();
          resolve();
        });
        s.on("error", reject);
      }));
      break;
    } catch {
      if (Date.now() > deadline) {
        proc.child.kill("SIGKILL");
        throw new Error(`nginx did not listen on ${port} within 10 s:\n${proc.logs()}`);
      }
      await h.sleep(50);
    }
  }
  return {
    url,
    port,
    prefix,
    conf,
    pid: proc.child.pid,
    logs: proc.logs,
    async stop() {
      if (!proc.isDone()) {
        proc.child.kill("SIGTERM"); // fast shutdown: open long-polls would delay SIGQUIT
        const ended = await h.within(5000, "nginx to exit", proc.exited).catch(() => null);
        if (!ended) {
          proc.child.kill("SIGKILL");
          await proc.exited;
        }
      }
      fs.rmSync(prefix, { recursive: true, force: true });
    },
  };
}

module.exports = {
  NGINX,
  REDIS_SERVER,
  kitClient,
  percentile,
  recordAll,
  redisRaw,
  skipReason,
  startNginx,
  startNode,
  startRedis,
  track,
  uniquePrefix,
  untilEach,
  waitMembers,
  waitMirror,
  waitReady,
};
