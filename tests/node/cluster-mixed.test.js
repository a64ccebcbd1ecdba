// A mixed cluster on a real redis-server: one Node.js socket.io 4.8.x node with
// @socket.io/redis-adapter 8.3.x (cluster-node-server.js), two ferrio nodes (testkit), clients on
// each, plus an @socket.io/redis-emitter 5.1.x. Everything a Node node does with its peers must
// complete and include ferrio's sockets; every emitter operation must reach the right ferrio
// clients and nobody else.
"use strict";

const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const h = require("./helpers");
const ch = require("./cluster-helpers");
const { startNodeIo, startEmitter } = require("./cluster-node-server");

let counter = 0;
function roomName(label) {
  counter += 1;
  return `${label}-${process.pid}-${counter}`;
}

/** How long "nothing else arrived" is watched for. */
const QUIET_MS = 300;
const sorted = (a) => [...a].sort();

/** Records every event (name + args) a socket receives. */
function tap(socket) {
  const got = [];
  socket.onAny((event, ...args) => got.push([event, ...args]));
  return got;
}

describe("cluster: Node socket.io + redis-adapter, two ferrio nodes, redis-emitter", { skip: ch.skipReason() || false }, () => {
  let redis;
  let prefix;
  let node; // the Node.js socket.io node
  let A;
  let B;
  let em; // the emitter

  before(async () => {
    redis = await ch.startRedis();
    prefix = ch.uniquePrefix("mixed");
    node = await startNodeIo({ redisUrl: redis.url, prefix, namespaces: ["/", "/admin"], requestsTimeout: 3000 });
    const env = { FERRIO_NAMESPACES: "/,/admin" };
    [A, B] = await Promise.all([
      ch.startNode(redis, { prefix, id: "mixed-A", env }),
      ch.startNode(redis, { prefix, id: "mixed-B", env }),
    ]);
    em = await startEmitter({ redisUrl: redis.url, prefix });
    await ch.waitMembers(redis, prefix, 3, "/");
    await ch.waitMembers(redis, prefix, 3, "/admin");
    await ch.waitMirror([A, B]);
  });

  after(async () => {
    h.closeClients();
    if (em) await em.close();
    if (node) await node.close();
    await Promise.all([A, B].filter(Boolean).map((s) => s.stop()));
    if (redis) await redis.stop("SIGKILL");
  });

  /** A connected client on ferrio `server` (testkit) or on the Node node. */
  async function on(server, { ns = "/", rooms, transport = "websocket" } = {}) {
    const url = server === node ? node.url : server.url;
    const s = h.client(url, ns, { transports: [transport], auth: rooms ? { rooms } : {} });
    await h.connected(s);
    return s;
  }

  /** Waits until ferrio's cluster-wide view of `room` (asked through `asker`) has exactly `ids`. */
  async function membersAre(asker, room, ids, what) {
    let last;
    await h.until(
      async () => {
        last = (await h.ack(asker, "room-members", room)).members;
        return JSON.stringify(sorted(last)) === JSON.stringify(sorted(ids));
      },
      `${what}: room-members ${room} = ${JSON.stringify(sorted(ids))} (last: ${JSON.stringify(last)})`
    );
  }

  describe("broadcasts both ways", () => {
    it("Node io.to(room).emit reaches ferrio clients on both nodes, binary included, nobody else", async () => {
      const room = roomName("n2f");
      const [a1, a2, b1, b2] = await Promise.all([on(A), on(A), on(B), on(B, { transport: "polling" })]);
      await h.ack(a1, "join-room", room);
      await h.ack(b2, "join-room", room);
      const n1 = await on(node, { rooms: [room] });
      const got = new Map([a1, a2, b1, b2, n1].map((s) => [s, h.record(s, "from-node")]));
      const bin = Buffer.from([1, 2, 3, 255]);
      node.io.to(room).emit("from-node", "hello", { k: [1, "x"] }, bin);
      await ch.untilEach(new Map([a1, b2, n1].map((s) => [s, got.get(s)])), 1, "the Node broadcast on a1, b2, n1");
      for (const s of [a1, b2, n1]) {
        const [[text, obj, b]] = got.get(s);
        assert.equal(text, "hello");
        assert.deepEqual(obj, { k: [1, "x"] });
        assert.ok(Buffer.isBuffer(b) && b.equals(bin), "binary arrives as binary");
      }
      // except: a ferrio socket id and a room
      node.io.to(room).except(a1.id).emit("from-node", "not-a1");
      await h.until(() => got.get(b2).length === 2 && got.get(n1).length === 2, "the except broadcast");
      await h.sleep(QUIET_MS);
      assert.equal(got.get(a1).length, 1, "a1 was excepted");
      assert.equal(got.get(a2).length, 0, "a2 is not in the room");
      assert.equal(got.get(b1).length, 0, "b1 is not in the room");
    });

    it("ferrio to-room reaches Node clients and the other ferrio node, never the sender", async () => {
      const room = roomName("f2n");
      const [a1, b1, b2] = await Promise.all([on(A), on(B), on(B)]);
      await h.ack(a1, "join-room", room);
      await h.ack(b1, "join-room", room);
      const [n1, n2] = await Promise.all([on(node, { rooms: [room] }), on(node)]);
      const got = new Map([a1, b1, b2, n1, n2].map((s) => [s, h.record(s, "relay")]));
      const bin = Buffer.from("ferrio-binary");
      assert.deepEqual(await h.ack(a1, "to-room", room, "relay", "from-a1", { z: 1, a: 2 }, bin), { ok: true });
      await ch.untilEach(new Map([b1, n1].map((s) => [s, got.get(s)])), 1, "a1's relay on b1 and n1");
      for (const s of [b1, n1]) {
        const [[text, obj, b]] = got.get(s);
        assert.equal(text, "from-a1");
        assert.equal(JSON.stringify(obj), '{"z":1,"a":2}');
        assert.ok(Buffer.isBuffer(b) && b.equals(bin), "binary arrives as binary on Node and ferrio clients");
      }
      // From B, a non-member: reaches a1 (node A), b1 (same node) and n1 (Node).
      assert.deepEqual(await h.ack(b2, "to-room", room, "relay", "from-b2"), { ok: true });
      await h.until(() => [a1, b1, n1].every((s) => got.get(s).some((x) => x[0] === "from-b2")), "b2's relay");
      await h.sleep(QUIET_MS);
      assert.deepEqual(got.get(a1).map((x) => x[0]), ["from-b2"], "the sender never hears its own relay");
      assert.equal(got.get(b2).length, 0);
      assert.equal(got.get(n2).length, 0, "a Node client outside the room hears nothing");
    });
  });

  describe("the Node node's server API over ferrio sockets", () => {
    it("fetchSockets includes ferrio sockets with ids and rooms", async () => {
      const room = roomName("fetch");
      const [a1, b1] = await Promise.all([on(A), on(B, { transport: "polling" })]);
      await h.ack(a1, "join-room", room);
      await h.ack(b1, "join-room", room);
      const n1 = await on(node, { rooms: [room] });
      const t0 = Date.now();
      const all = await h.within(4000, "io.fetchSockets()", node.io.fetchSockets());
      const took = Date.now() - t0;
      const ids = all.map((s) => s.id);
      for (const s of [a1, b1, n1]) assert.ok(ids.includes(s.id), `fetchSockets has ${s.id}`);
      assert.ok(took < 2000, `fetchSockets did not wait for a timeout (${took} ms)`);
      const inRoom = await node.io.in(room).fetchSockets();
      assert.deepEqual(sorted(inRoom.map((s) => s.id)), sorted([a1.id, b1.id, n1.id]));
      const ra1 = inRoom.find((s) => s.id === a1.id);
      assert.deepEqual(sorted([...ra1.rooms]), sorted([a1.id, room]), "rooms include the own-id room");
      assert.equal(typeof ra1.handshake, "object");
      assert.equal(ra1.handshake.query.EIO, "4");
      // A RemoteSocket of a ferrio node can be driven from Node.
      const hear = h.once(a1, "direct");
      ra1.emit("direct", "to a1 via RemoteSocket");
      assert.deepEqual(await hear, ["to a1 via RemoteSocket"]);
    });

    it("allRooms includes ferrio rooms", async () => {
      const onlyA = roomName("rooms-a");
      const onlyB = roomName("rooms-b");
      const [a1, b1] = await Promise.all([on(A), on(B)]);
      await h.ack(a1, "join-room", onlyA);
      await h.ack(b1, "join-room", onlyB);
      const rooms = await h.within(4000, "adapter.allRooms()", node.io.of("/").adapter.allRooms());
      for (const r of [onlyA, onlyB, a1.id, b1.id]) assert.ok(rooms.has(r), `allRooms has ${r}`);
    });

    it("serverSideEmit reaches both ferrio nodes; serverSideEmitWithAck gets one answer per ferrio node", async () => {
      const [a1, b1] = await Promise.all([on(A), on(B)]);
      const tag = roomName("sse");
      node.io.serverSideEmit("hello", tag, { x: 1 });
      for (const s of [a1, b1]) {
        await h.until(
          async () => (await h.ack(s, "server-side-emits")).events.some((e) => e.data[1] === tag),
          "the serverSideEmit on the ferrio node"
        );
        const { events } = await h.ack(s, "server-side-emits");
        assert.deepEqual(events.filter((e) => e.data[1] === tag), [{ ns: "/", data: ["hello", tag, { x: 1 }] }]);
      }
      const t0 = Date.now();
      const answers = await h.within(4000, "serverSideEmitWithAck", node.io.serverSideEmitWithAck("ping-srv", tag));
      const took = Date.now() - t0;
      assert.deepEqual(
        sorted(answers.map((a) => JSON.stringify(a))),
        sorted([
          JSON.stringify({ node: "mixed-A", data: ["ping-srv", tag] }),
          JSON.stringify({ node: "mixed-B", data: ["ping-srv", tag] }),
        ])
      );
      assert.ok(took < 2000, `serverSideEmitWithAck did not wait for a timeout (${took} ms)`);
    });

    it("socketsJoin / socketsLeave from Node apply to ferrio sockets, with presence", async () => {
      const room = roomName("sj");
      const [a1, b1, a2] = await Promise.all([on(A), on(B), on(A)]);
      await h.ack(b1, "join-room", room);
      await h.ack(a2, "join-room", room);
      const n1 = await on(node);
      const heardB1 = h.record(b1, "join-room");
      const heardA2 = h.record(a2, "join-room");
      node.io.in(a1.id).socketsJoin(room);
      node.io.in(n1.id).socketsJoin(room);
      await membersAre(b1, room, [a1.id, b1.id, a2.id, n1.id], "after socketsJoin");
      await h.until(
        () => heardB1.some(([p]) => p.id === a1.id) && heardA2.some(([p]) => p.id === a1.id),
        "join-room presence for a1 on both ferrio nodes"
      );
      assert.deepEqual(heardB1.find(([p]) => p.id === a1.id)[0], { room, id: a1.id });
      // Node A learns of the joins through the mirror too: eventually consistent, like Node's view.
      let listed;
      await h.until(async () => {
        listed = (await h.ack(a1, "list-rooms")).rooms.find((r) => r.room === room);
        return listed?.size === 4;
      }, `list-rooms on node A shows ${room} with 4 members (last: ${JSON.stringify(listed)})`);

      const leftB1 = h.record(b1, "leave-room");
      node.io.in(a1.id).socketsLeave(room);
      await membersAre(a2, room, [b1.id, a2.id, n1.id], "after socketsLeave");
      await h.until(() => leftB1.length === 1, "leave-room presence for a1");
      assert.deepEqual(leftB1[0][0], { room, id: a1.id });

      // A selector by room: every ferrio member of `room` joins another room too.
      const second = roomName("sj2");
      node.io.in(room).socketsJoin(second);
      await membersAre(a1, second, [b1.id, a2.id, n1.id], "in(room).socketsJoin(second)");
    });

    it("disconnectSockets disconnects ferrio clients", async () => {
      const room = roomName("dc");
      const [a1, b1, a2] = await Promise.all([on(A), on(B, { transport: "polling" }), on(A)]);
      await h.ack(a1, "join-room", room);
      await h.ack(b1, "join-room", room);
      const reasons = new Map([a1, b1, a2].map((s) => [s, h.once(s, "disconnect", 5000).then(([r]) => r, () => null)]));
      node.io.in(room).disconnectSockets();
      assert.equal(await reasons.get(a1), "io server disconnect");
      assert.equal(await reasons.get(b1), "io server disconnect");
      assert.equal(await h.within(5000, "", Promise.race([reasons.get(a2), h.sleep(QUIET_MS).then(() => "still connected")])), "still connected");
      assert.ok(a2.connected);
      // close = true ends the whole connection.
      const gone = h.once(a2, "disconnect");
      node.io.in(a2.id).disconnectSockets(true);
      assert.equal((await gone)[0], "transport close");
    });

    it("broadcast with acks (io.timeout().to(room).emitWithAck) completes with ferrio clients' acks", async () => {
      const room = roomName("bwa");
      const [a1, b1, a2] = await Promise.all([on(A), on(B), on(A, { transport: "polling" })]);
      await h.ack(a1, "join-room", room);
      await h.ack(b1, "join-room", room);
      const n1 = await on(node, { rooms: [room] });
      for (const s of [a1, b1, n1, a2]) s.on("question", (q, bin, cb) => cb({ from: s.id, q, bin: Buffer.isBuffer(bin) }));
      const t0 = Date.now();
      const answers = await h.within(
        4000,
        "emitWithAck",
        node.io.timeout(2000).to(room).emitWithAck("question", "are you there?", Buffer.from([7]))
      );
      const took = Date.now() - t0;
      assert.deepEqual(
        sorted(answers.map((a) => a.from)),
        sorted([a1.id, b1.id, n1.id]),
        "one ack per client in the room, on every node"
      );
      for (const a of answers) {
        assert.equal(a.q, "are you there?");
        assert.equal(a.bin, true, "binary arrives as binary");
      }
      assert.ok(took < 1500, `completed without waiting for the timeout (${took} ms)`);
      // An empty room completes at once with no answers (every ferrio node reports 0 clients).
      const none = await h.within(4000, "emitWithAck to nobody", node.io.timeout(2000).to(roomName("empty")).emitWithAck("question", 1, 2));
      assert.deepEqual(none, []);
    });
  });

  describe("hub answers stay cluster-wide with a Node member", () => {
    it("room-members and list-rooms on ferrio include Node sockets", async () => {
      const room = roomName("hubmix");
      const [a1, b1] = await Promise.all([on(A), on(B)]);
      const n1 = await on(node, { rooms: [room] });
      assert.deepEqual(await h.ack(a1, "join-room", room), { ok: true, room, size: 2 });
      await membersAre(b1, room, [a1.id, n1.id], "ferrio's view with a Node member");
      assert.deepEqual((await h.ack(b1, "list-rooms")).rooms.find((r) => r.room === room), { room, size: 2 });
    });

    it("delete-room from ferrio empties the room on the Node node too, after its notice", async () => {
      const room = roomName("delmix");
      const [a1, b1] = await Promise.all([on(A), on(B)]);
      const n1 = await on(node, { rooms: [room] });
      await h.ack(a1, "join-room", room);
      await h.ack(b1, "join-room", room);
      const heard = [a1, b1, n1].map((s) => h.once(s, "delete-room"));
      assert.deepEqual(await h.ack(b1, "delete-room", room), { ok: true, room });
      for (const p of heard) assert.deepEqual((await p)[0], { room });
      await h.until(() => !node.io.of("/").adapter.rooms.has(room), "the Node node's room to be empty");
      await membersAre(a1, room, [], "after delete-room");
    });

    it("io.in(room).socketsLeave(room) from Node empties the room on ferrio", async () => {
      const room = roomName("emptymix");
      const [a1, b1] = await Promise.all([on(A), on(B)]);
      await h.ack(a1, "join-room", room);
      await h.ack(b1, "join-room", room);
      node.io.in(room).socketsLeave(room);
      await membersAre(a1, room, [], "after in(room).socketsLeave(room)");
      assert.ok(!(await h.ack(b1, "list-rooms")).rooms.some((r) => r.room === room));
    });
  });

  describe("every emitter operation reaches the right ferrio clients and nobody else", () => {
    /** Clients: a1 (A: E1), a2 (A: E2), b1 (B: E1, E2), b2 (B: -), n1 (Node: E1), /admin on each. */
    async function setup() {
      const E1 = roomName("e1");
      const E2 = roomName("e2");
      const [a1, a2, b1, b2] = await Promise.all([on(A), on(A, { transport: "polling" }), on(B), on(B)]);
      await h.ack(a1, "join-room", E1);
      await h.ack(a2, "join-room", E2);
      await h.ack(b1, "join-room", E1);
      await h.ack(b1, "join-room", E2);
      const n1 = await on(node, { rooms: [E1] });
      const [aAdm, bAdm, nAdm] = await Promise.all([
        on(A, { ns: "/admin" }),
        on(B, { ns: "/admin", transport: "polling" }),
        on(node, { ns: "/admin" }),
      ]);
      const all = { a1, a2, b1, b2, n1, aAdm, bAdm, nAdm };
      const seen = Object.fromEntries(Object.entries(all).map(([k, s]) => [k, tap(s)]));
      // Presence from the joins above may still be travelling: let it pass, then start clean.
      await h.sleep(200);
      for (const v of Object.values(seen)) v.length = 0;
      return { E1, E2, all, seen };
    }

    /** Waits for `event` on exactly `who` (names), then checks nobody else got it. */
    async function exactly(seen, event, who, what) {
      const names = Object.keys(seen);
      await h.until(
        () => who.every((n) => seen[n].some((e) => e[0] === event)),
        `${what}: "${event}" on ${who.join(", ")}`
      );
      await h.sleep(QUIET_MS);
      for (const n of names) {
        const count = seen[n].filter((e) => e[0] === event).length;
        assert.equal(count, who.includes(n) ? 1 : 0, `${what}: ${n} got "${event}" ${count} times`);
      }
      return Object.fromEntries(who.map((n) => [n, seen[n].find((e) => e[0] === event).slice(1)]));
    }

    it("emit / to / in / except / multi-room / volatile / binary / of('/admin')", async () => {
      const { E1, E2, all, seen } = await setup();
      const e = em.emitter;

      e.emit("em-all", 1, "two", { three: [3] });
      const args = await exactly(seen, "em-all", ["a1", "a2", "b1", "b2", "n1"], "emit");
      assert.deepEqual(args.a2, [1, "two", { three: [3] }]);

      e.to(E1).emit("em-to", { a: 1 });
      await exactly(seen, "em-to", ["a1", "b1", "n1"], "to(E1)");

      e.in(E2).emit("em-in", "x");
      await exactly(seen, "em-in", ["a2", "b1"], "in(E2)");

      e.to(E1).to(E2).except(E2).emit("em-multi", "y");
      await exactly(seen, "em-multi", ["a1", "n1"], "to(E1).to(E2).except(E2)");

      e.except(all.a1.id).emit("em-except-id", "z");
      await exactly(seen, "em-except-id", ["a2", "b1", "b2", "n1"], "except(a1's id)");

      e.to(all.b2.id).emit("em-to-id", "just b2");
      await exactly(seen, "em-to-id", ["b2"], "to(b2's id)");

      e.volatile.to(E2).emit("em-volatile", true);
      await exactly(seen, "em-volatile", ["a2", "b1"], "volatile.to(E2)");

      const bin = Buffer.from([0xde, 0xad, 0xbe, 0xef]);
      e.to(E1).emit("em-bin", bin, { nested: bin });
      const b = await exactly(seen, "em-bin", ["a1", "b1", "n1"], "binary");
      for (const n of ["a1", "b1"]) {
        assert.ok(Buffer.isBuffer(b[n][0]) && b[n][0].equals(bin), `${n}: binary arg`);
        assert.ok(Buffer.isBuffer(b[n][1].nested) && b[n][1].nested.equals(bin), `${n}: nested binary`);
      }

      e.of("/admin").emit("em-admin", "for admins");
      await exactly(seen, "em-admin", ["aAdm", "bAdm", "nAdm"], "of('/admin')");
    });

    it("socketsJoin / socketsLeave, with presence to existing members", async () => {
      const { E1, all, seen } = await setup();
      const { a1, a2, b1, n1 } = all;
      const EJ = roomName("ej");
      await h.ack(a2, "join-room", EJ); // an existing member, to hear presence
      await h.ack(all.b2, "join-room", roomName("other"));
      await h.sleep(100);
      for (const v of Object.values(seen)) v.length = 0;

      em.emitter.in(E1).socketsJoin(EJ);
      await membersAre(a2, EJ, [a1.id, b1.id, a2.id, n1.id], "emitter in(E1).socketsJoin(EJ)");
      await h.until(() => seen.a2.filter((e) => e[0] === "join-room").length === 2, "a2 hears a1 and b1 join");
      assert.deepEqual(
        sorted(seen.a2.filter((e) => e[0] === "join-room").map((e) => e[1].id)),
        sorted([a1.id, b1.id]),
        "presence for the ferrio sockets that joined (Node sockets have no ferrio presence)"
      );
      assert.deepEqual((await h.ack(all.b2, "room-members", EJ)).members.includes(all.b2.id), false);

      em.emitter.in(E1).socketsLeave(EJ);
      await membersAre(a2, EJ, [a2.id], "emitter in(E1).socketsLeave(EJ)");
      await h.until(() => seen.a2.filter((e) => e[0] === "leave-room").length === 2, "a2 hears a1 and b1 leave");
      assert.deepEqual(sorted(seen.a2.filter((e) => e[0] === "leave-room").map((e) => e[1].id)), sorted([a1.id, b1.id]));
      await h.sleep(QUIET_MS);
      assert.equal(seen.b2.length, 0, "b2 (not selected, not a member) heard nothing");
    });

    it("serverSideEmit reaches both ferrio nodes (and the Node node)", async () => {
      const { all } = await setup();
      const tag = roomName("em-sse");
      em.emitter.serverSideEmit("em-sse", 42, tag);
      for (const s of [all.a1, all.b1]) {
        await h.until(
          async () => (await h.ack(s, "server-side-emits")).events.some((e) => e.data[2] === tag),
          "the emitter's serverSideEmit on a ferrio node"
        );
        const { events } = await h.ack(s, "server-side-emits");
        assert.deepEqual(events.filter((e) => e.data[2] === tag), [{ ns: "/", data: ["em-sse", 42, tag] }], "once");
      }
      await h.until(() => node.serverSideEmits.some((d) => d[2] === tag), "the emitter's serverSideEmit on the Node node");
    });

    it("disconnectSockets", async () => {
      const { E2, seen, all } = await setup();
      const reasons = {};
      for (const [n, s] of Object.entries(all)) s.on("disconnect", (r) => (reasons[n] = r));
      em.emitter.in(E2).disconnectSockets();
      await h.until(() => reasons.a2 && reasons.b1, "a2 and b1 disconnected");
      await h.sleep(QUIET_MS);
      assert.deepEqual(reasons, { a2: "io server disconnect", b1: "io server disconnect" }, "only E2's members");
      void seen;
      // close = true: the transport goes too.
      em.emitter.in(all.b2.id).disconnectSockets(true);
      await h.until(() => reasons.b2, "b2 disconnected");
      assert.equal(reasons.b2, "transport close");
      await h.sleep(QUIET_MS);
      assert.deepEqual(Object.keys(reasons).sort(), ["a2", "b1", "b2"]);
    });
  });
});
