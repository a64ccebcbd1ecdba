// Events, acks in both directions and binary attachments, over each transport.
"use strict";

const { describe, it, before, after, afterEach } = require("node:test");
const assert = require("node:assert/strict");
const h = require("./helpers");

/** Bytes 0..n-1 modulo 256, so a shifted or truncated attachment shows. */
function bytes(n, seed = 0) {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i + seed) & 0xff;
  return b;
}

/** deepStrictEqual, after turning every Buffer/ArrayBuffer/typed array into a Buffer. */
function assertSameData(actual, expected, message) {
  const norm = (v) => {
    if (Buffer.isBuffer(v)) return { $bin: v.toString("hex") };
    if (v instanceof ArrayBuffer) return { $bin: Buffer.from(v).toString("hex") };
    if (ArrayBuffer.isView(v)) return { $bin: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("hex") };
    if (Array.isArray(v)) return v.map(norm);
    if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, norm(x)]));
    return v;
  };
  assert.deepStrictEqual(norm(actual), norm(expected), message);
}

const NESTED = () => ({
  name: "upload",
  parts: [bytes(3), { inner: bytes(17, 5), list: [1, bytes(0), "x"] }],
  meta: { deep: { deeper: { blob: bytes(1024, 9) } } },
});

describe("events", () => {
  let server;
  before(async () => {
    server = await h.startServer({ kind: "testkit" });
  });
  after(async () => {
    h.closeClients();
    if (server) await server.stop();
  });
  afterEach(() => h.closeClients());

  it("echoes JSON values of every type unchanged", async () => {
    const s = h.client(server.url, "/", { transports: ["websocket"] });
    await h.connected(s);
    const args = [
      "text with \"quotes\", \\ backslash, \n newline, and unicode é 漢字 🚀",
      0,
      -1.5,
      1e21,
      true,
      false,
      null,
      [],
      {},
      [1, [2, [3, [4]]]],
      { a: { b: { c: [null, "d"] } } },
    ];
    s.emit("echo", ...args);
    assert.deepStrictEqual(await h.once(s, "echo"), args);
  });

  it("keeps JSON object key order", async () => {
    const s = h.client(server.url, "/", { transports: ["websocket"] });
    await h.connected(s);
    const value = { zeta: 1, alpha: { y: 2, b: 3 }, mid: [{ k2: 1, k1: 2 }], "10": "numeric-looking key" };
    s.emit("echo", value);
    const [got] = await h.once(s, "echo");
    assert.equal(JSON.stringify(got), JSON.stringify(value));
  });

  it("accepts unicode event names", async () => {
    const s = h.client(server.url, "/", { transports: ["websocket"] });
    await h.connected(s);
    assert.deepEqual(await h.ackAll(s, "echo-ack", "événement", "🚀"), ["événement", "🚀"]);
  });

  it("delivers 200 events from one client in order", async () => {
    const s = h.client(server.url, "/", { transports: ["websocket"] });
    await h.connected(s);
    const got = h.record(s, "echo");
    for (let i = 0; i < 200; i++) s.emit("echo", i, `n${i}`);
    await h.until(() => got.length === 200, "200 echoes");
    got.forEach((args, i) => assert.deepEqual(args, [i, `n${i}`]));
  });

  it("acks a client emit with all its arguments", async () => {
    const s = h.client(server.url);
    await h.connected(s);
    assert.deepEqual(await h.ackAll(s, "echo-ack", 1, "two", { three: [3] }), [1, "two", { three: [3] }]);
    assert.deepEqual(await h.ackAll(s, "echo-ack"), []);
  });

  it("matches concurrent acks to their emits", async () => {
    const s = h.client(server.url);
    await h.connected(s);
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) => h.ackAll(s, "echo-ack", i))
    );
    assert.deepEqual(
      results.map((r) => r[0]),
      Array.from({ length: 50 }, (_, i) => i)
    );
  });

  for (const transport of ["polling", "websocket"]) {
    describe(`binary over ${transport}`, () => {
      it("echoes a Buffer unchanged", async () => {
        const s = h.client(server.url, "/", { transports: [transport] });
        await h.connected(s);
        const payload = bytes(256);
        s.emit("echo", payload);
        const [got] = await h.once(s, "echo");
        assertSameData(got, payload);
      });

      it("echoes Buffers nested in objects and arrays, mixed with JSON", async () => {
        const s = h.client(server.url, "/", { transports: [transport] });
        await h.connected(s);
        const args = [NESTED(), "plain", [bytes(2, 100), bytes(2, 200)]];
        s.emit("echo", ...args);
        assertSameData(await h.once(s, "echo"), args);
      });

      it("echoes a 200 KB Buffer", async () => {
        const s = h.client(server.url, "/", { transports: [transport] });
        await h.connected(s);
        const big = bytes(200 * 1024, 7);
        s.emit("echo", big);
        const [got] = await h.once(s, "echo", 10000);
        assertSameData(got, big);
      });

      it("acks with binary arguments", async () => {
        const s = h.client(server.url, "/", { transports: [transport] });
        await h.connected(s);
        const args = [bytes(5), { x: bytes(6, 1) }];
        assertSameData(await h.ackAll(s, "echo-ack", ...args), args);
      });

      it("interleaves binary and text events in order", async () => {
        const s = h.client(server.url, "/", { transports: [transport] });
        await h.connected(s);
        const got = h.record(s, "echo");
        const sent = [];
        for (let i = 0; i < 20; i++) {
          const args = i % 2 ? [i, bytes(i + 1, i)] : [i, "text"];
          sent.push(args);
          s.emit("echo", ...args);
        }
        await h.until(() => got.length === 20, "20 echoes");
        assertSameData(got, sent);
      });
    });
  }

  describe("server-to-client acks", () => {
    it("the server emits with an ack and gets the client's ack arguments", async () => {
      const s = h.client(server.url);
      await h.connected(s);
      const seen = [];
      s.on("question", (a, b, cb) => {
        seen.push([a, b]);
        cb("answer", { to: a }, 42);
      });
      const reply = await h.ack(s, "server-ack", { event: "question", args: ["q1", [1, 2]], timeout_ms: 3000 });
      assert.deepEqual(seen, [["q1", [1, 2]]]);
      assert.deepEqual(reply, { ok: true, args: ["answer", { to: "q1" }, 42] });
    });

    it("binary travels both ways through a server-side ack", async () => {
      const s = h.client(server.url, "/", { transports: ["websocket"] });
      await h.connected(s);
      let received;
      s.on("blob", (b, cb) => {
        received = b;
        cb(bytes(9, 3), { nested: bytes(4, 4) });
      });
      const reply = await h.ack(s, "server-ack", { event: "blob", args: [bytes(8, 1)], timeout_ms: 3000 });
      assertSameData(received, bytes(8, 1));
      assert.equal(reply.ok, true);
      assertSameData(reply.args, [bytes(9, 3), { nested: bytes(4, 4) }]);
    });

    it("times out when the client never acks", async () => {
      const s = h.client(server.url);
      await h.connected(s);
      let asked = 0;
      s.on("silent", () => {
        asked += 1; // never calls the ack
      });
      const started = Date.now();
      const reply = await h.ack(s, "server-ack", { event: "silent", args: [], timeout_ms: 400 });
      const elapsed = Date.now() - started;
      assert.deepEqual(reply, { ok: false, error: "timeout" });
      assert.equal(asked, 1);
      assert.ok(elapsed >= 350, `timed out after ${elapsed} ms, expected about 400`);
      assert.ok(elapsed < 3000, `timed out after ${elapsed} ms, expected about 400`);
      // the socket is still fine afterwards
      assert.deepEqual(await h.ackAll(s, "echo-ack", "ok"), ["ok"]);
    });

    it("ignores a late ack after the timeout", async () => {
      const s = h.client(server.url);
      await h.connected(s);
      s.on("slow", (cb) => setTimeout(() => cb("too late"), 500));
      const reply = await h.ack(s, "server-ack", { event: "slow", args: [], timeout_ms: 200 });
      assert.deepEqual(reply, { ok: false, error: "timeout" });
      await h.sleep(600);
      assert.ok(s.connected, "a late ack must not break the connection");
      assert.deepEqual(await h.ackAll(s, "echo-ack", "after"), ["after"]);
    });
  });
});
