// The hub (DESIGN.md, "The hub"), driven through the ferrio binary itself with socket.io-client.
"use strict";

const { describe, it, before, after, afterEach } = require("node:test");
const assert = require("node:assert/strict");
const h = require("./helpers");

let counter = 0;
/** A room name no other test uses. */
function roomName(label) {
  counter += 1;
  return `${label}-${process.pid}-${counter}`;
}

/** JSON with Buffers shown as hex, for comparing relayed data including key order. */
function show(v) {
  return JSON.stringify(v, (_k, x) => {
    if (x && x.type === "Buffer" && Array.isArray(x.data)) return { $bin: Buffer.from(x.data).toString("hex") };
    if (x instanceof ArrayBuffer) return { $bin: Buffer.from(x).toString("hex") };
    return x;
  });
}

/** Nothing of `events` should arrive at `socket` for `ms`: returns what did. */
function watch(socket, events) {
  const got = [];
  for (const e of events) socket.on(e, (...args) => got.push([e, ...args]));
  return got;
}

const PRESENCE = ["join-room", "leave-room", "delete-room"];

describe("hub", () => {
  let server;
  before(async () => {
    server = await h.startServer({ kind: "ferrio", env: { FERRIO_NAMESPACES: "/,/admin" } });
  });
  after(async () => {
    h.closeClients();
    if (server) await server.stop();
  });
  afterEach(() => h.closeClients());

  /** `n` connected clients on `ns` (mixed transports, so both paths relay). */
  async function clients(n, ns = "/") {
    const list = Array.from({ length: n }, (_, i) =>
      h.client(server.url, ns, { transports: i % 2 ? ["polling"] : ["websocket"] })
    );
    await Promise.all(list.map((s) => h.connectOnly(s)));
    return list;
  }

  describe("join-room / leave-room / presence", () => {
    it("join-room acks the size and tells the other members", async () => {
      const [a, b, c] = await clients(3);
      const room = roomName("join");
      const seenA = watch(a, PRESENCE);
      const seenB = watch(b, PRESENCE);
      assert.deepEqual(await h.ack(a, "join-room", room), { ok: true, room, size: 1 });
      const aHears = h.once(a, "join-room");
      assert.deepEqual(await h.ack(b, "join-room", room), { ok: true, room, size: 2 });
      assert.deepEqual((await aHears)[0], { room, id: b.id });
      const bHears = h.once(b, "join-room");
      const aHears2 = h.once(a, "join-room");
      assert.deepEqual(await h.ack(c, "join-room", room), { ok: true, room, size: 3 });
      assert.deepEqual((await bHears)[0], { room, id: c.id });
      assert.deepEqual((await aHears2)[0], { room, id: c.id });
      await h.sleep(150);
      assert.deepEqual(
        seenA.map(([e, p]) => [e, p.id]),
        [
          ["join-room", b.id],
          ["join-room", c.id],
        ],
        "a member hears each join once, and not its own"
      );
      assert.deepEqual(seenB.map(([e, p]) => [e, p.id]), [["join-room", c.id]]);
    });

    it("joining a room twice is not an error and notifies nobody", async () => {
      const [a, b] = await clients(2);
      const room = roomName("twice");
      await h.ack(a, "join-room", room);
      await h.ack(b, "join-room", room);
      await h.sleep(100);
      const seenA = watch(a, PRESENCE);
      assert.deepEqual(await h.ack(b, "join-room", room), { ok: true, room, size: 2 });
      await h.sleep(200);
      assert.deepEqual(seenA, []);
    });

    it("leave-room acks the new size and tells the remaining members", async () => {
      const [a, b] = await clients(2);
      const room = roomName("leave");
      await h.ack(a, "join-room", room);
      await h.ack(b, "join-room", room);
      const seenB = watch(b, PRESENCE);
      const aHears = h.once(a, "leave-room");
      assert.deepEqual(await h.ack(b, "leave-room", room), { ok: true, room, size: 1 });
      assert.deepEqual((await aHears)[0], { room, id: b.id });
      await h.sleep(150);
      assert.deepEqual(seenB, [], "the leaver hears nothing");
      assert.deepEqual(await h.ack(a, "room-members", room), { ok: true, room, members: [a.id] });
    });

    it("leaving a room one is not in acks ok and notifies nobody", async () => {
      const [a, b] = await clients(2);
      const room = roomName("notin");
      await h.ack(a, "join-room", room);
      const seenA = watch(a, PRESENCE);
      assert.deepEqual(await h.ack(b, "leave-room", room), { ok: true, room, size: 1 });
      const nowhere = roomName("nowhere");
      assert.deepEqual(await h.ack(b, "leave-room", nowhere), { ok: true, room: nowhere, size: 0 });
      await h.sleep(200);
      assert.deepEqual(seenA, []);
    });

    it("a room is deleted when its last member leaves", async () => {
      const [a] = await clients(1);
      const room = roomName("last");
      await h.ack(a, "join-room", room);
      let list = await h.ack(a, "list-rooms");
      assert.ok(list.rooms.some((r) => r.room === room));
      assert.deepEqual(await h.ack(a, "leave-room", room), { ok: true, room, size: 0 });
      list = await h.ack(a, "list-rooms");
      assert.equal(list.ok, true);
      assert.ok(!list.rooms.some((r) => r.room === room), "an empty room must not be listed");
    });

    it("a disconnect is a leave-room for every room of the socket", async () => {
      const [a, b] = await clients(2);
      const r1 = roomName("dc1");
      const r2 = roomName("dc2");
      for (const r of [r1, r2]) {
        await h.ack(a, "join-room", r);
        await h.ack(b, "join-room", r);
      }
      const leaves = h.record(a, "leave-room");
      const bId = b.id;
      b.disconnect();
      await h.until(() => leaves.length >= 2, "two leave-room notifications");
      await h.sleep(100);
      const got = leaves.map(([p]) => p).sort((x, y) => x.room.localeCompare(y.room));
      assert.deepEqual(got, [
        { room: r1, id: bId },
        { room: r2, id: bId },
      ]);
      assert.deepEqual(await h.ack(a, "room-members", r1), { ok: true, room: r1, members: [a.id] });
    });

    it("an abrupt transport close is also a leave-room", async () => {
      const [a, b] = await clients(2);
      const room = roomName("abrupt");
      await h.ack(a, "join-room", room);
      await h.ack(b, "join-room", room);
      const aHears = h.once(a, "leave-room");
      const bId = b.id;
      b.io.engine.close();
      assert.deepEqual((await aHears)[0], { room, id: bId });
    });

    it("accepts room names up to 256 bytes of UTF-8", async () => {
      const [a] = await clients(1);
      const room = "é".repeat(128); // 256 bytes
      assert.deepEqual(await h.ack(a, "join-room", room), { ok: true, room, size: 1 });
      const emoji = "🚀 room ñ";
      assert.deepEqual(await h.ack(a, "join-room", emoji), { ok: true, room: emoji, size: 1 });
    });
  });

  describe("list-rooms / room-members", () => {
    it("lists rooms with sizes, without socket-id rooms", async () => {
      const [a, b, c] = await clients(3);
      const r1 = roomName("list1");
      const r2 = roomName("list2");
      await h.ack(a, "join-room", r1);
      await h.ack(b, "join-room", r1);
      await h.ack(c, "join-room", r2);
      const list = await h.ack(c, "list-rooms");
      assert.equal(list.ok, true);
      assert.ok(Array.isArray(list.rooms));
      const mine = list.rooms.filter((r) => r.room === r1 || r.room === r2);
      mine.sort((x, y) => x.room.localeCompare(y.room));
      assert.deepEqual(mine, [
        { room: r1, size: 2 },
        { room: r2, size: 1 },
      ]);
      const ids = new Set([a.id, b.id, c.id]);
      for (const r of list.rooms) {
        assert.ok(!ids.has(r.room), `socket id ${r.room} listed as a room`);
        assert.deepEqual(Object.keys(r), ["room", "size"]);
        assert.ok(r.size > 0);
      }
    });

    it("room-members lists the socket ids of the members", async () => {
      const [a, b, c] = await clients(3);
      const room = roomName("members");
      await h.ack(a, "join-room", room);
      await h.ack(b, "join-room", room);
      const res = await h.ack(c, "room-members", room);
      assert.equal(res.ok, true);
      assert.equal(res.room, room);
      assert.deepEqual([...res.members].sort(), [a.id, b.id].sort());
      const empty = roomName("empty");
      assert.deepEqual(await h.ack(c, "room-members", empty), { ok: true, room: empty, members: [] });
    });

    it("rooms of different namespaces are separate", async () => {
      const [root] = await clients(1, "/");
      const [admin] = await clients(1, "/admin");
      const room = roomName("ns");
      await h.ack(root, "join-room", room);
      assert.deepEqual(await h.ack(admin, "room-members", room), { ok: true, room, members: [] });
      assert.deepEqual(await h.ack(admin, "join-room", room), { ok: true, room, size: 1 });
      const rootGot = h.record(root, "msg");
      assert.deepEqual(await h.ack(admin, "to-room", room, "msg", "admin says"), { ok: true });
      const [other] = await clients(1, "/admin");
      await h.ack(other, "join-room", room);
      const otherHears = h.once(admin, "msg");
      await h.ack(other, "to-room", room, "msg", "hello admin");
      assert.deepEqual(await otherHears, ["hello admin"]);
      await h.sleep(150);
      assert.deepEqual(rootGot, [], "a relay in /admin must not reach / members");
    });
  });

  describe("delete-room", () => {
    it("members receive delete-room (no leave-room) and the room is gone", async () => {
      const [a, b, c] = await clients(3);
      const room = roomName("del");
      await h.ack(a, "join-room", room);
      await h.ack(b, "join-room", room);
      await h.sleep(100);
      const seenA = watch(a, PRESENCE);
      const seenB = watch(b, PRESENCE);
      const seenC = watch(c, PRESENCE);
      assert.deepEqual(await h.ack(c, "delete-room", room), { ok: true, room });
      await h.until(() => seenA.length >= 1 && seenB.length >= 1, "delete-room notifications");
      await h.sleep(150);
      assert.deepEqual(seenA, [["delete-room", { room }]]);
      assert.deepEqual(seenB, [["delete-room", { room }]]);
      assert.deepEqual(seenC, [], "a non-member requester hears nothing");
      assert.deepEqual(await h.ack(c, "room-members", room), { ok: true, room, members: [] });
      const list = await h.ack(c, "list-rooms");
      assert.ok(!list.rooms.some((r) => r.room === room));
      // former members are really out: a relay reaches nobody
      const relayed = h.record(a, "after");
      await h.ack(c, "to-room", room, "after", 1);
      await h.sleep(150);
      assert.deepEqual(relayed, []);
    });

    it("a member requester receives delete-room too", async () => {
      const [a, b] = await clients(2);
      const room = roomName("delself");
      await h.ack(a, "join-room", room);
      await h.ack(b, "join-room", room);
      await h.sleep(100);
      const seenA = watch(a, PRESENCE);
      const aHears = h.once(a, "delete-room");
      const bHears = h.once(b, "delete-room");
      assert.deepEqual(await h.ack(a, "delete-room", room), { ok: true, room });
      assert.deepEqual((await aHears)[0], { room });
      assert.deepEqual((await bHears)[0], { room });
      await h.sleep(150);
      assert.deepEqual(seenA, [["delete-room", { room }]]);
    });

    it("deleting a room that does not exist acks ok and notifies nobody", async () => {
      const [a, b] = await clients(2);
      const seenB = watch(b, PRESENCE);
      const room = roomName("ghost");
      assert.deepEqual(await h.ack(a, "delete-room", room), { ok: true, room });
      await h.sleep(150);
      assert.deepEqual(seenB, []);
    });
  });

  describe("to-room", () => {
    it("reaches every other member, not the sender, and acks ok", async () => {
      const [a, b, c] = await clients(3);
      const room = roomName("relay");
      for (const s of [a, b, c]) await h.ack(s, "join-room", room);
      const gotA = h.record(a, "chat");
      const bHears = h.once(b, "chat");
      const cHears = h.once(c, "chat");
      assert.deepEqual(await h.ack(a, "to-room", room, "chat", "hi", { n: 1 }), { ok: true });
      assert.deepEqual(await bHears, ["hi", { n: 1 }]);
      assert.deepEqual(await cHears, ["hi", { n: 1 }]);
      await h.sleep(150);
      assert.deepEqual(gotA, [], "the sender never receives its own relay");
    });

    it("a non-member may send to a room", async () => {
      const [a, b] = await clients(2);
      const room = roomName("outsider");
      await h.ack(a, "join-room", room);
      const aHears = h.once(a, "news");
      const gotB = h.record(b, "news");
      assert.deepEqual(await h.ack(b, "to-room", room, "news", "from outside"), { ok: true });
      assert.deepEqual(await aHears, ["from outside"]);
      await h.sleep(100);
      assert.deepEqual(gotB, []);
    });

    it("sending to an empty or unknown room acks ok", async () => {
      const [a] = await clients(1);
      assert.deepEqual(await h.ack(a, "to-room", roomName("void"), "x"), { ok: true });
    });

    it("relays events with no arguments", async () => {
      const [a, b] = await clients(2);
      const room = roomName("noargs");
      await h.ack(b, "join-room", room);
      const bHears = h.once(b, "ping-all");
      await h.ack(a, "to-room", room, "ping-all");
      assert.deepEqual(await bHears, []);
    });

    it("keeps binary arguments binary, nested ones included", async () => {
      const [a, b] = await clients(2); // b is on polling: attachments travel as base64 there
      const room = roomName("bin");
      await h.ack(b, "join-room", room);
      const bHears = h.once(b, "file");
      const args = [Buffer.from([0, 1, 2, 255]), { name: "f.bin", parts: [Buffer.from("abc"), { deep: Buffer.alloc(0) }] }, "tail"];
      assert.deepEqual(await h.ack(a, "to-room", room, "file", ...args), { ok: true });
      const got = await bHears;
      assert.ok(Buffer.isBuffer(got[0]) || got[0] instanceof ArrayBuffer, "first arg must arrive as binary");
      assert.equal(show(got.map((x) => (x instanceof ArrayBuffer ? Buffer.from(x) : x))), show(args));
    });

    it("relays JSON unchanged, object key order included", async () => {
      const [a, b] = await clients(2);
      const room = roomName("order");
      await h.ack(b, "join-room", room);
      const value = { zeta: 1, alpha: { y: 2, b: [3, { k2: 1, k1: 2 }] }, mid: null, "10": "ten", e: 1.25 };
      const bHears = h.once(b, "doc");
      await h.ack(a, "to-room", room, "doc", value, [value]);
      const got = await bHears;
      assert.equal(JSON.stringify(got), JSON.stringify([value, [value]]));
    });

    it("relays from one sender arrive in the order sent", async () => {
      const [a, b, c] = await clients(3);
      const room = roomName("fifo");
      await h.ack(b, "join-room", room);
      await h.ack(c, "join-room", room);
      const gotB = h.record(b, "seq");
      const gotC = h.record(c, "seq");
      for (let i = 0; i < 100; i++) a.emit("to-room", room, "seq", i);
      await h.until(() => gotB.length === 100 && gotC.length === 100, "100 relays at each member");
      const expected = Array.from({ length: 100 }, (_, i) => i);
      assert.deepEqual(
        gotB.map((x) => x[0]),
        expected
      );
      assert.deepEqual(
        gotC.map((x) => x[0]),
        expected
      );
    });

    it("a member of several rooms gets each relay exactly once", async () => {
      const [a, b] = await clients(2);
      const r1 = roomName("multi1");
      const r2 = roomName("multi2");
      await h.ack(b, "join-room", r1);
      await h.ack(b, "join-room", r2);
      await h.ack(b, "join-room", r1); // a second join must not double deliveries
      await h.ack(a, "join-room", r1);
      await h.ack(a, "join-room", r2);
      const got = h.record(b, "m");
      await h.ack(a, "to-room", r1, "m", "one");
      await h.ack(a, "to-room", r2, "m", "two");
      await h.until(() => got.length >= 2, "two relays");
      await h.sleep(200);
      assert.deepEqual(got, [["one"], ["two"]]);
    });

    it("a command without an ack still works", async () => {
      const [a, b] = await clients(2);
      const room = roomName("noack");
      b.emit("join-room", room);
      await h.until(async () => (await h.ack(a, "room-members", room)).members.length === 1, "b to join");
      const bHears = h.once(b, "quiet");
      a.emit("to-room", room, "quiet", 1);
      assert.deepEqual(await bHears, [1]);
    });
  });

  describe("malformed commands", () => {
    /** Asserts `{ok:false, error:<non-empty string>}` and that the sender is still connected. */
    async function refused(socket, event, ...args) {
      const res = await h.ack(socket, event, ...args);
      assert.equal(res.ok, false, `${event} ${JSON.stringify(args)} should be refused, got ${JSON.stringify(res)}`);
      assert.equal(typeof res.error, "string");
      assert.ok(res.error.length > 0);
      assert.deepEqual(Object.keys(res).sort(), ["error", "ok"]);
      assert.ok(socket.connected, "a malformed command must not disconnect");
    }

    it("join-room, leave-room, delete-room and room-members need a valid room", async () => {
      const [a, b] = await clients(2);
      for (const event of ["join-room", "leave-room", "delete-room", "room-members"]) {
        await refused(a, event);
        await refused(a, event, 42);
        await refused(a, event, null);
        await refused(a, event, { room: "x" });
        await refused(a, event, ["x"]);
        await refused(a, event, "");
        await refused(a, event, "é".repeat(129)); // 258 bytes
        await refused(a, event, "x".repeat(257));
      }
      // a socket id is not a valid room name, the sender's own or another's
      await refused(a, "join-room", a.id);
      await refused(a, "join-room", b.id);
      await refused(a, "to-room", b.id, "direct", 1);
      // the socket is still fully usable
      const room = roomName("afterbad");
      assert.deepEqual(await h.ack(a, "join-room", room), { ok: true, room, size: 1 });
    });

    it("to-room needs a room and a string, non-reserved event name", async () => {
      const [a, b] = await clients(2);
      const room = roomName("badrelay");
      await h.ack(b, "join-room", room);
      const seenB = h.record(b, "disconnect");
      await refused(a, "to-room");
      await refused(a, "to-room", room);
      await refused(a, "to-room", 7, "event");
      await refused(a, "to-room", room, 42);
      await refused(a, "to-room", room, null);
      await refused(a, "to-room", room, { event: "x" });
      for (const reserved of ["connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"]) {
        await refused(a, "to-room", room, reserved, "x");
      }
      await h.sleep(150);
      assert.deepEqual(seenB, []);
      assert.ok(b.connected);
    });
  });
});
