// Checks that ferrio-bench speaks Engine.IO v4 / Socket.IO v5: it drives the real Node
// socket.io server (server.js), and a real socket.io-client in the same room sees exactly the
// frames the generator publishes. Run: `npm test` (builds ferrio-bench if it is missing).
"use strict";

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { spawn, execFileSync } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");
const { io: connectClient } = require("socket.io-client");

const repo = path.resolve(__dirname, "../../../..");
const generator = process.env.FERRIO_BENCH || path.join(repo, "target/release/ferrio-bench");
let server;
let port;

function startServer() {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--expose-gc", path.join(__dirname, "../server.js")], {
      env: { ...process.env, HOST: "127.0.0.1", PORT: "0" },
      stdio: ["ignore", "pipe", "inherit"],
    });
    const timer = setTimeout(() => reject(new Error("server did not start")), 10000);
    child.stdout.on("data", (chunk) => {
      const m = /listening on [\d.]+:(\d+)/.exec(chunk.toString());
      if (m) {
        clearTimeout(timer);
        resolve([child, Number(m[1])]);
      }
    });
    child.on("exit", (code) => reject(new Error(`server exited with ${code}`)));
  });
}

// Runs one scenario; resolves with its JSON line.
function bench(args) {
  return new Promise((resolve, reject) => {
    const child = spawn(generator, [...args, "--port", String(port)], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    const timer = setTimeout(() => child.kill("SIGKILL"), 60000);
    child.stdout.on("data", (c) => (out += c));
    child.on("exit", (code) => {
      clearTimeout(timer);
      try {
        resolve({ code, result: JSON.parse(out.trim().split("\n").pop()) });
      } catch (e) {
        reject(new Error(`bad output (exit ${code}): ${out}`));
      }
    });
  });
}

function once(socket, event, ...args) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event}`)), 5000);
    socket.emit(event, ...args, (...reply) => {
      clearTimeout(timer);
      resolve(reply);
    });
  });
}

before(async () => {
  if (!fs.existsSync(generator)) {
    execFileSync("cargo", ["build", "--release", "-p", "ferrio-bench"], { cwd: repo, stdio: "inherit" });
  }
  [server, port] = await startServer();
});

after(() => {
  if (server) server.kill("SIGTERM");
});

test("the peer acks the hub commands the generator relies on", async () => {
  const c = connectClient(`http://127.0.0.1:${port}`, { transports: ["websocket"] });
  try {
    assert.deepEqual(await once(c, "join-room", "r1"), [{ ok: true, room: "r1", size: 1 }]);
    assert.deepEqual(await once(c, "echo-ack", { a: 1 }, "two", 3), [{ a: 1 }, "two", 3]);
    assert.deepEqual(await once(c, "to-room", "r1", "x", 1), [{ ok: true }]);
  } finally {
    c.close();
  }
});

test("echo: every emit is acked and timed", async () => {
  const { code, result } = await bench(["echo", "--clients", "20", "--rate", "5", "--secs", "1", "--warmup", "0.2"]);
  assert.equal(code, 0, JSON.stringify(result));
  assert.equal(result.ok, true);
  assert.equal(result.unacked, 0);
  assert.equal(result.stray_acks, 0);
  assert.ok(result.rtt.count >= 80, JSON.stringify(result.rtt));
  assert.equal(result.counters.malformed, 0);
});

test("echo closed loop: acks per second measured", async () => {
  const { code, result } = await bench(["echo", "--closed-loop", "--clients", "4", "--window", "2", "--secs", "1"]);
  assert.equal(code, 0, JSON.stringify(result));
  assert.ok(result.acked_per_s > 100, String(result.acked_per_s));
});

test("fanout: the generator's to-room frames reach a real socket.io-client intact", async () => {
  const c = connectClient(`http://127.0.0.1:${port}`, { transports: ["websocket"] });
  const seen = [];
  c.on("msg", (...args) => seen.push(args));
  try {
    const joined = await once(c, "join-room", "bench");
    assert.equal(joined[0].ok, true);
    const { code, result } = await bench(["fanout", "--subs", "20", "--rate", "10,20", "--secs", "1", "--size", "100"]);
    assert.equal(code, 0, JSON.stringify(result));
    assert.equal(result.steps.length, 2);
    for (const step of result.steps) {
      assert.equal(step.delivered, step.expected);
      assert.equal(step.pass, true);
    }
    assert.ok(result.knee.deliveries_per_s >= 300, JSON.stringify(result.knee));
    // What the real client got: one argument, the generator's payload object.
    const sent = result.steps.reduce((n, s) => n + s.sent, 0);
    assert.equal(seen.length, sent);
    const [payload] = seen[0];
    assert.equal(seen[0].length, 1);
    assert.deepEqual(Object.keys(payload), ["s", "n", "t", "p"]);
    assert.equal(JSON.stringify(payload).length, 100);
  } finally {
    c.close();
  }
});

test("idle: connections held and server RSS read from /proc", async () => {
  const { code, result } = await bench(["idle", "--conns", "100", "--secs", "1", "--settle", "0.2", "--pid", String(server.pid), "--gc-signal"]);
  assert.equal(code, 0, JSON.stringify(result));
  assert.equal(result.alive, 100);
  assert.ok(result.rss_end_kib > 0);
  assert.ok(result.rss_per_conn_bytes > 0);
});
