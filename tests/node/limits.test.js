// FERRIO_MAX_PAYLOAD, FERRIO_CONNECT_TIMEOUT_MS and the heartbeat, through real clients.
"use strict";

const { describe, it, before, after, afterEach } = require("node:test");
const assert = require("node:assert/strict");
const h = require("./helpers");

const MAX = 10000;

/** GETs a poll for `sid` and returns { status, body } (the poll may wait for a packet). */
function poll(url, sid) {
  return h.httpGet(`${url}/socket.io/?EIO=4&transport=polling&sid=${sid}`);
}

async function handshake(url) {
  const res = await h.httpGet(`${url}/socket.io/?EIO=4&transport=polling`);
  assert.equal(res.status, 200);
  return JSON.parse(res.body.slice(1)).sid;
}

describe("limits", () => {
  let server;
  before(async () => {
    server = await h.startServer({
      kind: "ferrio",
      env: {
        FERRIO_MAX_PAYLOAD: String(MAX),
        FERRIO_CONNECT_TIMEOUT_MS: "600",
        FERRIO_PING_INTERVAL_MS: "300",
        FERRIO_PING_TIMEOUT_MS: "300",
      },
    });
  });
  after(async () => {
    h.closeClients();
    if (server) await server.stop();
  });
  afterEach(() => h.closeClients());

  it("announces maxPayload in the handshake", async () => {
    const res = await h.httpGet(`${server.url}/socket.io/?EIO=4&transport=polling`);
    assert.equal(JSON.parse(res.body.slice(1)).maxPayload, MAX);
  });

  for (const transport of ["websocket", "polling"]) {
    it(`a message over FERRIO_MAX_PAYLOAD over ${transport} closes the sender and reaches nobody`, async () => {
      const a = h.client(server.url, "/", { transports: [transport] });
      const b = h.client(server.url, "/", { transports: ["websocket"] });
      await Promise.all([h.connectOnly(a), h.connectOnly(b)]);
      const room = `limit-${transport}`;
      await h.ack(b, "join-room", room);
      const got = h.record(b, "big");
      // under the limit: delivered
      await h.ack(a, "to-room", room, "big", "x".repeat(MAX / 2));
      await h.until(() => got.length === 1, "the small relay");
      // over the limit: the sender is disconnected, nobody receives it
      const disconnected = h.once(a, "disconnect");
      a.emit("to-room", room, "big", "y".repeat(MAX * 2));
      const [reason] = await disconnected;
      assert.ok(["transport close", "transport error"].includes(reason), `sender saw ${reason}`);
      await h.sleep(300);
      assert.equal(got.length, 1, "the oversize relay must reach nobody");
      assert.ok(b.connected, "other clients stay connected");
    });
  }

  it("closes a session that sends no CONNECT within FERRIO_CONNECT_TIMEOUT_MS", async () => {
    const sid = await handshake(server.url);
    await h.sleep(1200);
    const res = await poll(server.url, sid);
    // either the session is gone (400, code 1) or the pending close is delivered
    if (res.status === 400) {
      assert.equal(JSON.parse(res.body).code, 1);
    } else {
      assert.equal(res.status, 200);
      assert.match(res.body, /(^|\x1e)1(\x1e|$)/, `expected a close packet, got ${JSON.stringify(res.body)}`);
    }
  });

  it("keeps a session whose client answers pings, and drops one that does not", async () => {
    // a real client answers pings: still connected after several intervals
    const s = h.client(server.url, "/", { transports: ["polling"] });
    await h.connectOnly(s);
    await h.sleep(1500);
    assert.ok(s.connected);
    // a raw session that connects but never answers pings is closed after interval + timeout
    const sid = await handshake(server.url);
    const post = await h.httpGet(
      `${server.url}/socket.io/?EIO=4&transport=polling&sid=${sid}`,
      { "Content-Type": "text/plain;charset=UTF-8" },
      "POST",
      "40"
    );
    assert.equal(post.status, 200);
    const first = await poll(server.url, sid); // CONNECT reply (and maybe a ping)
    assert.equal(first.status, 200);
    await h.sleep(1200);
    const later = await poll(server.url, sid);
    if (later.status === 400) {
      assert.equal(JSON.parse(later.body).code, 1);
    } else {
      assert.match(later.body, /(^|\x1e)1(\x1e|$)/, `expected the session closed, got ${JSON.stringify(later.body)}`);
    }
  });
});
