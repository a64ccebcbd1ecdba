// Transports, upgrade, namespaces and the CONNECT handshake, as socket.io-client 4.8 sees them.
"use strict";

const { describe, it, before, after, afterEach } = require("node:test");
const assert = require("node:assert/strict");
const { Manager } = require("socket.io-client");
const h = require("./helpers");

const SOCKET_ID = /^[A-Za-z0-9_-]{20}$/;

describe("connection", () => {
  let server;
  before(async () => {
    server = await h.startServer({
      kind: "testkit",
      env: {
        FERRIO_NAMESPACES: "/,/admin,/org-*",
        FERRIO_PING_INTERVAL_MS: "700",
        FERRIO_PING_TIMEOUT_MS: "600",
      },
    });
  });
  after(async () => {
    h.closeClients();
    if (server) await server.stop();
  });
  afterEach(() => h.closeClients());

  it("serves /healthz and /readyz with 200", async () => {
    assert.equal((await h.httpGet(`${server.url}/healthz`)).status, 200);
    assert.equal((await h.httpGet(`${server.url}/readyz`)).status, 200);
  });

  it("polling handshake carries a 20-char sid and the configured heartbeat", async () => {
    const res = await h.httpGet(`${server.url}/socket.io/?EIO=4&transport=polling`);
    assert.equal(res.status, 200);
    assert.equal(res.body[0], "0", `open packet expected, got ${res.body}`);
    const open = JSON.parse(res.body.slice(1));
    assert.match(open.sid, SOCKET_ID);
    assert.deepEqual(open.upgrades, ["websocket"]);
    assert.equal(open.pingInterval, 700);
    assert.equal(open.pingTimeout, 600);
    assert.equal(open.maxPayload, 1000000);
  });

  it("polling-only client connects, stays on polling and round-trips events", async () => {
    const s = h.client(server.url, "/", { transports: ["polling"] });
    const welcome = await h.connected(s);
    assert.match(s.id, SOCKET_ID);
    assert.equal(welcome.id, s.id);
    assert.equal(welcome.ns, "/");
    assert.equal(s.io.engine.transport.name, "polling");
    assert.notEqual(s.id, s.io.engine.id, "socket id must not be the Engine.IO sid");
    assert.match(s.io.engine.id, SOCKET_ID);
    s.emit("echo", "over", "polling", 42);
    assert.deepEqual(await h.once(s, "echo"), ["over", "polling", 42]);
    // long enough for two heartbeats: the session survives pings answered over polling
    await h.sleep(1600);
    assert.ok(s.connected, "polling session should survive heartbeats");
    assert.deepEqual(await h.ackAll(s, "echo-ack", "still", "here"), ["still", "here"]);
  });

  it("websocket-only client connects and round-trips events", async () => {
    const s = h.client(server.url, "/", { transports: ["websocket"] });
    const welcome = await h.connected(s);
    assert.equal(welcome.id, s.id);
    assert.equal(s.io.engine.transport.name, "websocket");
    s.emit("echo", { over: "websocket" });
    assert.deepEqual(await h.once(s, "echo"), [{ over: "websocket" }]);
    await h.sleep(1600);
    assert.ok(s.connected, "websocket session should survive heartbeats");
  });

  it("default client upgrades from polling to websocket without losing or reordering events", async () => {
    const s = h.client(server.url);
    const upgraded = new Promise((resolve) => s.io.on("open", () => s.io.engine.once("upgrade", resolve)));
    const got = h.record(s, "echo");
    await h.connected(s);
    // emitted while the upgrade may still be in flight
    for (let i = 0; i < 50; i++) s.emit("echo", i);
    await h.within(h.WAIT_MS, "the upgrade", upgraded);
    assert.equal(s.io.engine.transport.name, "websocket");
    for (let i = 50; i < 100; i++) s.emit("echo", i);
    await h.until(() => got.length >= 100, "100 echoes");
    assert.deepEqual(
      got.map((a) => a[0]),
      Array.from({ length: 100 }, (_, i) => i)
    );
  });

  it("passes the CONNECT auth payload, and {} when there is none", async () => {
    const auth = { token: "t-123", user: { id: 7, roles: ["a", "b"] } };
    const withAuth = h.client(server.url, "/", { auth });
    assert.deepEqual((await h.connected(withAuth)).auth, auth);
    const without = h.client(server.url);
    assert.deepEqual((await h.connected(without)).auth, {});
  });

  it("multiplexes two namespaces on one connection with separate socket ids", async () => {
    const manager = new Manager(server.url, { reconnection: false, timeout: h.WAIT_MS });
    const root = manager.socket("/");
    const admin = manager.socket("/admin", { auth: { role: "admin" } });
    try {
      const [wRoot, wAdmin] = await Promise.all([h.connected(root), h.connected(admin)]);
      assert.equal(wRoot.ns, "/");
      assert.equal(wAdmin.ns, "/admin");
      assert.deepEqual(wAdmin.auth, { role: "admin" });
      assert.notEqual(root.id, admin.id);
      assert.equal(wRoot.id, root.id);
      assert.equal(wAdmin.id, admin.id);
      // one Engine.IO session carries both
      assert.equal(root.io, admin.io);
      assert.ok(manager.engine && manager.engine.id);

      const rootEchoes = h.record(root, "echo");
      admin.emit("echo", "admin-only");
      assert.deepEqual(await h.once(admin, "echo"), ["admin-only"]);
      root.emit("echo", "root-only");
      assert.deepEqual(await h.once(root, "echo"), ["root-only"]);
      await h.sleep(100);
      assert.deepEqual(rootEchoes, [["root-only"]], "an event in /admin must not reach /");
    } finally {
      root.disconnect();
      admin.disconnect();
      manager.engine?.close();
    }
  });

  it("accepts namespaces matching a prefix pattern", async () => {
    const s = h.client(server.url, "/org-42");
    const welcome = await h.connected(s);
    assert.equal(welcome.ns, "/org-42");
    assert.deepEqual(await h.ackAll(s, "echo-ack", "org"), ["org"]);
  });

  it("refuses an unknown namespace with Invalid namespace, keeping the connection's other namespaces", async () => {
    const manager = new Manager(server.url, { reconnection: false, timeout: h.WAIT_MS });
    const root = manager.socket("/");
    const nope = manager.socket("/nope");
    const org = manager.socket("/org"); // the pattern is /org-*, so /org itself is unknown
    const refused = h.once(nope, "connect_error");
    const refused2 = h.once(org, "connect_error");
    try {
      await h.connected(root);
      const [err] = await refused;
      assert.equal(err.message, "Invalid namespace");
      const [err2] = await refused2;
      assert.equal(err2.message, "Invalid namespace");
      assert.equal(nope.connected, false);
      assert.ok(root.connected);
      assert.deepEqual(await h.ackAll(root, "echo-ack", "alive"), ["alive"]);
    } finally {
      root.disconnect();
      manager.engine?.close();
    }
  });

  it("gives every connection its own socket id", async () => {
    const sockets = Array.from({ length: 10 }, () => h.client(server.url, "/", { transports: ["websocket"] }));
    await Promise.all(sockets.map((s) => h.connected(s)));
    const ids = new Set(sockets.map((s) => s.id));
    assert.equal(ids.size, 10);
    for (const id of ids) assert.match(id, SOCKET_ID);
  });
});
