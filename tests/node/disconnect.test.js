// Disconnects and their reasons, seen from both sides; automatic reconnection; SIGTERM.
"use strict";

const { describe, it, before, after, afterEach } = require("node:test");
const assert = require("node:assert/strict");
const { Manager } = require("socket.io-client");
const h = require("./helpers");

describe("disconnect", () => {
  let server;
  let observer; // a second client that asks the testkit for server-side reasons
  before(async () => {
    server = await h.startServer({ kind: "testkit", env: { FERRIO_NAMESPACES: "/,/admin" } });
  });
  after(async () => {
    h.closeClients();
    if (server) await server.stop();
  });
  afterEach(() => h.closeClients());

  async function newObserver() {
    observer = h.client(server.url, "/", { transports: ["websocket"] });
    await h.connected(observer);
    return observer;
  }

  for (const transport of ["polling", "websocket"]) {
    // As in Node: the client names it "io client disconnect", the server (which got a DISCONNECT
    // packet) "client namespace disconnect".
    it(`client disconnect over ${transport}: "io client disconnect" / "client namespace disconnect"`, async () => {
      const obs = await newObserver();
      const s = h.client(server.url, "/", { transports: [transport] });
      await h.connected(s);
      const id = s.id;
      assert.deepEqual(await h.ack(obs, "disconnect-reason", id), { reason: null });
      const [reason] = await Promise.all([h.once(s, "disconnect"), Promise.resolve(s.disconnect())]);
      assert.equal(reason[0], "io client disconnect");
      assert.equal(await h.serverReason(obs, id), "client namespace disconnect");
    });

    it(`server-disconnect over ${transport}: the client sees "io server disconnect" and stays away`, async () => {
      const obs = await newObserver();
      const s = h.client(server.url, "/", {
        transports: [transport],
        reconnection: true,
        reconnectionDelay: 50,
        reconnectionDelayMax: 100,
      });
      await h.connected(s);
      const id = s.id;
      const welcomes = h.record(s, "welcome");
      const disconnected = h.once(s, "disconnect");
      s.emit("server-disconnect");
      const [reason] = await disconnected;
      assert.equal(reason, "io server disconnect");
      assert.equal(await h.serverReason(obs, id), "server namespace disconnect");
      await h.sleep(500);
      assert.equal(s.connected, false, "the client must not reconnect after io server disconnect");
      assert.equal(welcomes.length, 0);
    });

    it(`server-close over ${transport}: the client sees "transport close" and reconnects`, async () => {
      const obs = await newObserver();
      const s = h.client(server.url, "/", {
        transports: [transport],
        reconnection: true,
        reconnectionDelay: 50,
        reconnectionDelayMax: 100,
      });
      const first = await h.connected(s);
      const firstSid = s.io.engine.id;
      const disconnected = h.once(s, "disconnect");
      const welcomedAgain = h.once(s, "welcome", 8000);
      s.emit("server-close");
      const [reason] = await disconnected;
      assert.equal(reason, "transport close");
      const [second] = await welcomedAgain;
      assert.ok(s.connected);
      assert.notEqual(second.id, first.id, "a reconnection is a new socket");
      assert.equal(second.id, s.id);
      assert.notEqual(s.io.engine.id, firstSid, "a reconnection is a new Engine.IO session");
      const serverSide = await h.serverReason(obs, first.id);
      assert.equal(typeof serverSide, "string");
      // the new session works
      assert.deepEqual(await h.ackAll(s, "echo-ack", "back"), ["back"]);
    });
  }

  it('closing the Engine.IO connection from the client: "forced close" / "transport close"', async () => {
    const obs = await newObserver();
    const s = h.client(server.url, "/", { transports: ["websocket"] });
    await h.connected(s);
    const id = s.id;
    const disconnected = h.once(s, "disconnect");
    s.io.engine.close();
    assert.equal((await disconnected)[0], "forced close");
    assert.equal(await h.serverReason(obs, id), "transport close");
  });

  it("a server disconnect of one namespace leaves the other namespace on the connection", async () => {
    const manager = new Manager(server.url, { reconnection: false, timeout: h.WAIT_MS });
    const root = manager.socket("/");
    const admin = manager.socket("/admin");
    try {
      await Promise.all([h.connected(root), h.connected(admin)]);
      const disconnected = h.once(admin, "disconnect");
      admin.emit("server-disconnect");
      assert.equal((await disconnected)[0], "io server disconnect");
      await h.sleep(100);
      assert.ok(root.connected);
      assert.deepEqual(await h.ackAll(root, "echo-ack", "root alive"), ["root alive"]);
    } finally {
      root.disconnect();
      manager.engine?.close();
    }
  });

  it("a client disconnect of one namespace leaves the other namespace on the connection", async () => {
    const obs = await newObserver();
    const manager = new Manager(server.url, { reconnection: false, timeout: h.WAIT_MS });
    const root = manager.socket("/");
    const admin = manager.socket("/admin");
    try {
      await Promise.all([h.connected(root), h.connected(admin)]);
      const adminId = admin.id;
      admin.disconnect();
      assert.equal(await h.serverReason(obs, adminId), "client namespace disconnect");
      assert.ok(root.connected);
      assert.deepEqual(await h.ackAll(root, "echo-ack", "root alive"), ["root alive"]);
    } finally {
      root.disconnect();
      manager.engine?.close();
    }
  });
});

describe("shutdown", () => {
  it("SIGTERM disconnects clients and exits 0", async () => {
    const server = await h.startServer({ kind: "testkit" });
    try {
      const s = h.client(server.url, "/", { transports: ["websocket"] });
      await h.connected(s);
      const disconnected = h.once(s, "disconnect");
      server.child.kill("SIGTERM");
      const [reason] = await disconnected;
      assert.equal(typeof reason, "string");
      const ended = await h.within(10000, "the server to exit after SIGTERM", server.exited);
      assert.deepEqual(ended, { code: 0, signal: null });
    } finally {
      h.closeClients();
      await server.stop(1000);
    }
  });
});
