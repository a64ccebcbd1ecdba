// Two ferrio nodes (testkit) over a real redis-server: every hub command across nodes, presence,
// a late third node getting the room view, and a SIGKILLed node leaving the view in bounded time.
"use strict";

const { describe, it, before, after, afterEach } = require("node:test");
const assert = require("node:assert/strict");
const h = require("./helpers");
const ch = require("./cluster-helpers");

let counter = 0;
function roomName(label) {
  counter += 1;
  return `${label}-${process.pid}-${counter}`;
}

/** JSON with Buffers as {$bin: hex}, to compare relayed args including key order. */
function show(v) {
  return JSON.stringify(v, (_k, x) => {
    if (x && x.type === "Buffer" && Array.isArray(x.data)) return { $bin: Buffer.from(x.data).toString("hex") };
    if (x instanceof ArrayBuffer) return { $bin: Buffer.from(x).toString("hex") };
    return x;
  });
}

const PRESENCE = ["join-room", "leave-room", "delete-room"];
function watch(socket, events = PRESENCE) {
  const got = [];
  for (const e of events) socket.on(e, (...args) => got.push([e, ...args]));
  return got;
}

/** The quiet window after which "nothing arrived" is believed. */
const QUIET_MS = 300;

const sorted = (a) => [...a].sort();

describe("cluster: two ferrio nodes over Redis", { skip: ch.skipReason() || false }, () => {
  let redis;
  let A;
  let B;
  let prefix;
  const extra = [];

  before(async () => {
    redis = await ch.startRedis();
    prefix = ch.uniquePrefix("two");
    [A, B] = await Promise.all([
      ch.startNode(redis, { prefix, id: "node-A" }),
      ch.startNode(redis, { prefix, id: "node-B" }),
    ]);
    await ch.waitMembers(redis, prefix, 2);
    await ch.waitMirror([A, B]);
  });

  after(async () => {
    h.closeClients();
    await Promise.all([A, B, ...extra].filter(Boolean).map((s) => s.stop()));
    if (redis) await redis.stop("SIGKILL");
  });

  afterEach(() => h.closeClients());

  /** Connected hub clients: `spec` is a list of servers, one client each (websocket / polling mixed). */
  async function clientsOn(...servers) {
    const list = servers.map((s, i) =>
      h.client(s.url, "/", { transports: i % 2 ? ["polling"] : ["websocket"] })
    );
    await Promise.all(list.map((s) => h.connected(s)));
    return list;
  }

  it("the testkit says which node serves a socket", async () => {
    const [a, b] = await clientsOn(A, B);
    assert.deepEqual(await h.ack(a, "node-info"), { node: "node-A" });
    assert.deepEqual(await h.ack(b, "node-info"), { node: "node-B" });
  });

  it("join-room sizes are cluster-wide and presence crosses nodes", async () => {
    const [a1, b1, a2, b2] = await clientsOn(A, B, A, B);
    const room = roomName("join");
    const seen = new Map([a1, b1, a2, b2].map((s) => [s, watch(s)]));

    // The mirror is eventually consistent: a join acked on one node reaches the other node's
    // view through Redis, usually before the client's next request does, but not always. A
    // repeated join is harmless (no presence, same size), so a size seen from the other node
    // may take a few retries.
    const joinSize = async (s, size) => {
      let last;
      await h.until(async () => {
        last = await h.ack(s, "join-room", room);
        return last.size === size;
      }, `size ${size} (last ${JSON.stringify(last)})`, 2000);
      assert.deepEqual(last, { ok: true, room, size });
    };
    assert.deepEqual(await h.ack(a1, "join-room", room), { ok: true, room, size: 1 });
    const a1HearsB1 = h.once(a1, "join-room");
    await joinSize(b1, 2);
    assert.deepEqual((await a1HearsB1)[0], { room, id: b1.id });

    const hearA2 = [h.once(a1, "join-room"), h.once(b1, "join-room")];
    await joinSize(a2, 3);
    for (const p of hearA2) assert.deepEqual((await p)[0], { room, id: a2.id });

    const hearB2 = [h.once(a1, "join-room"), h.once(b1, "join-room"), h.once(a2, "join-room")];
    await joinSize(b2, 4);
    for (const p of hearB2) assert.deepEqual((await p)[0], { room, id: b2.id });

    // Joining twice: not an error, the size is unchanged, nobody is told.
    assert.deepEqual(await h.ack(b2, "join-room", room), { ok: true, room, size: 4 });

    for (const s of [a1, b1, a2, b2]) {
      const members = await h.ack(s, "room-members", room);
      assert.deepEqual(sorted(members.members), sorted([a1.id, b1.id, a2.id, b2.id]), "room-members from every node");
      const list = await h.ack(s, "list-rooms");
      assert.deepEqual(list.rooms.find((r) => r.room === room), { room, size: 4 });
    }

    // leave-room on B: members on both nodes hear it; sizes follow.
    const hearLeave = [h.once(a1, "leave-room"), h.once(a2, "leave-room"), h.once(b2, "leave-room")];
    assert.deepEqual(await h.ack(b1, "leave-room", room), { ok: true, room, size: 3 });
    for (const p of hearLeave) assert.deepEqual((await p)[0], { room, id: b1.id });
    assert.deepEqual((await h.ack(a1, "join-room", room)).size, 3, "size seen from A after B's leave");

    await h.sleep(QUIET_MS);
    const ids = (s) => seen.get(s).map(([e, p]) => [e, p.id]);
    assert.deepEqual(ids(a1), [["join-room", b1.id], ["join-room", a2.id], ["join-room", b2.id], ["leave-room", b1.id]]);
    assert.deepEqual(ids(b1), [["join-room", a2.id], ["join-room", b2.id]], "b1 hears nothing after it left");
    assert.deepEqual(ids(b2), [["leave-room", b1.id]], "each event once, none of its own");
  });

  it("list-rooms and room-members show rooms of the other node", async () => {
    const [a1, b1, b2] = await clientsOn(A, B, B);
    const onlyB = roomName("only-b");
    const both = roomName("both");
    await h.ack(b1, "join-room", onlyB);
    await h.ack(b2, "join-room", onlyB);
    await h.ack(b1, "join-room", both);
    await h.ack(a1, "join-room", both);
    for (const s of [a1, b1]) {
      const { rooms } = await h.ack(s, "list-rooms");
      const mine = rooms.filter((r) => r.room === onlyB || r.room === both);
      assert.deepEqual(sorted(mine.map(show)), sorted([{ room: onlyB, size: 2 }, { room: both, size: 2 }].map(show)));
      assert.ok(!rooms.some((r) => [a1.id, b1.id, b2.id].includes(r.room)), "no socket-id rooms");
    }
    assert.deepEqual(sorted((await h.ack(a1, "room-members", onlyB)).members), sorted([b1.id, b2.id]));
    assert.deepEqual(await h.ack(a1, "room-members", roomName("none")), {
      ok: true,
      room: `none-${process.pid}-${counter}`,
      members: [],
    });
  });

  it("to-room relays A→B and B→A, binary included, never back to the sender", async () => {
    const [a1, b1, a2, b2] = await clientsOn(A, B, A, B);
    const room = roomName("relay");
    for (const s of [a1, b1, a2]) await h.ack(s, "join-room", room);
    const got = new Map([a1, b1, a2, b2].map((s) => [s, h.record(s, "news")]));

    const payload = { z: 1, a: [true, null, "x"], m: { y: 2, b: 1 } };
    const bin = Buffer.from([0, 1, 2, 253, 254, 255]);
    assert.deepEqual(await h.ack(a1, "to-room", room, "news", "from-a1", payload, bin, { nested: bin }), { ok: true });
    await ch.untilEach(new Map([[b1, got.get(b1)], [a2, got.get(a2)]]), 1, "a1's relay on both nodes");
    for (const s of [b1, a2]) {
      const [args] = got.get(s);
      assert.equal(show(args), show(["from-a1", payload, bin, { nested: bin }]), "args unchanged, key order kept");
      assert.ok(Buffer.isBuffer(args[2]), "binary stays binary");
    }

    // From B, by a non-member: every member on both nodes, the sender excluded anyway.
    assert.deepEqual(await h.ack(b2, "to-room", room, "news", "from-b2"), { ok: true });
    await h.until(() => [a1, b1, a2].every((s) => got.get(s).some((a) => a[0] === "from-b2")), "b2's relay");

    // A member on B sends: everyone else hears it, b1 does not.
    assert.deepEqual(await h.ack(b1, "to-room", room, "news", "from-b1"), { ok: true });
    await h.until(() => [a1, a2].every((s) => got.get(s).some((a) => a[0] === "from-b1")), "b1's relay");
    await h.sleep(QUIET_MS);
    assert.deepEqual(got.get(a1).map((a) => a[0]), ["from-b2", "from-b1"], "a1 never hears its own relay");
    assert.deepEqual(got.get(b1).map((a) => a[0]), ["from-a1", "from-b2"], "b1 never hears its own relay");
    assert.deepEqual(got.get(b2), [], "b2 is not a member");
  });

  it("relays from one sender arrive in order on the other node", async () => {
    const [a1, b1] = await clientsOn(A, B);
    const room = roomName("order");
    await h.ack(b1, "join-room", room);
    const got = h.record(b1, "seq");
    const N = 200;
    for (let i = 0; i < N; i++) a1.emit("to-room", room, "seq", i);
    await h.ack(a1, "to-room", room, "seq", N);
    await h.until(() => got.length === N + 1, `${N + 1} relays on B`);
    assert.deepEqual(got.map((a) => a[0]), Array.from({ length: N + 1 }, (_, i) => i));
  });

  it("delete-room: members on both nodes get delete-room and no leave-room", async () => {
    const [a1, b1, a2, b2, b3] = await clientsOn(A, B, A, B, B);
    const room = roomName("delete");
    const seen = new Map([a1, b1, a2, b2, b3].map((s) => [s, watch(s)]));
    // Presence of a join travels on its own, through Redis for members on the other node: each
    // joiner waits until the earlier members heard the previous join, or a late presence notice
    // could reach a member that joined after it.
    const joinsHeard = (s) => seen.get(s).filter(([e]) => e === "join-room").length;
    const members = [a1, b1, a2, b2];
    for (let i = 0; i < members.length; i++) {
      await h.ack(members[i], "join-room", room);
      await h.until(
        () => members.slice(0, i).every((s, k) => joinsHeard(s) === i - k),
        `presence of join ${i + 1} to settle`
      );
    }
    assert.equal(joinsHeard(b2), 0);
    for (const s of seen.keys()) seen.get(s).length = 0;

    // Requested on B by a non-member.
    assert.deepEqual(await h.ack(b3, "delete-room", room), { ok: true, room });
    await h.until(
      () => [a1, b1, a2, b2].every((s) => seen.get(s).some(([e]) => e === "delete-room")),
      "delete-room on every member"
    );
    await h.sleep(QUIET_MS);
    for (const s of [a1, b1, a2, b2]) {
      assert.deepEqual(seen.get(s), [["delete-room", { room }]], "one delete-room, no leave-room");
    }
    assert.deepEqual(seen.get(b3), [], "the non-member requester hears nothing");
    for (const s of [a1, b1]) {
      assert.deepEqual((await h.ack(s, "room-members", room)).members, []);
      assert.ok(!(await h.ack(s, "list-rooms")).rooms.some((r) => r.room === room), "the room is gone everywhere");
    }
    // The room is usable again, from scratch.
    assert.deepEqual(await h.ack(b1, "join-room", room), { ok: true, room, size: 1 });
  });

  it("a member disconnecting on one node is leave-room on the other", async () => {
    const [a1, b1] = await clientsOn(A, B);
    const room = roomName("disc");
    await h.ack(a1, "join-room", room);
    await h.ack(b1, "join-room", room);
    const hear = h.once(a1, "leave-room");
    const id = b1.id;
    b1.disconnect();
    assert.deepEqual((await hear)[0], { room, id });
    await h.until(async () => (await h.ack(a1, "room-members", room)).members.length === 1, "B's member gone from A's view");
  });

  it("a node started late gets the current room view", async () => {
    const [a1, b1, a2] = await clientsOn(A, B, A);
    const r1 = roomName("late1");
    const r2 = roomName("late2");
    await h.ack(a1, "join-room", r1);
    await h.ack(b1, "join-room", r1);
    await h.ack(a2, "join-room", r2);
    await h.ack(b1, "join-room", r2);
    await h.ack(a2, "join-room", r1);

    const t0 = Date.now();
    const C = await ch.startNode(redis, { prefix, id: "node-C" });
    extra.push(C);
    const c1 = h.client(C.url, "/", { transports: ["websocket"] });
    await h.connected(c1);
    // The newcomer says hello; the others answer with a snapshot: bounded, not instant.
    const want = [{ room: r1, size: 3 }, { room: r2, size: 2 }];
    let rooms;
    await h.until(
      async () => {
        rooms = (await h.ack(c1, "list-rooms")).rooms.filter((r) => r.room === r1 || r.room === r2);
        return show(rooms) === show(want);
      },
      `list-rooms on the late node to be ${show(want)} (last: ${show(rooms)})`,
      5000
    );
    console.log(`# late node: view complete ${Date.now() - t0} ms after its start began`);
    assert.deepEqual(sorted((await h.ack(c1, "room-members", r1)).members), sorted([a1.id, b1.id, a2.id]));
    // And it takes part: joining on C is counted on A.
    const hear = [h.once(a1, "join-room"), h.once(b1, "join-room"), h.once(a2, "join-room")];
    assert.deepEqual(await h.ack(c1, "join-room", r1), { ok: true, room: r1, size: 4 });
    for (const p of hear) assert.deepEqual((await p)[0], { room: r1, id: c1.id });
    await C.stop();
    extra.splice(extra.indexOf(C), 1);
  });

  it("every node's view converges while members churn and a node starts", async () => {
    const churners = await clientsOn(A, A, A, A, A, A, A, A);
    const [b1] = await clientsOn(B);
    const room = roomName("churn");
    let stop = false;
    const loops = churners.map(async (s) => {
      let n = 0;
      while (!stop) {
        await h.ack(s, n % 2 ? "leave-room" : "join-room", room);
        n += 1;
      }
      // End state: even-numbered churners in the room, odd ones out.
      const i = churners.indexOf(s);
      await h.ack(s, i % 2 ? "leave-room" : "join-room", room);
    });
    await h.sleep(300);
    const C = await ch.startNode(redis, { prefix, id: "node-churn" }); // snapshots fly during the churn
    extra.push(C);
    await h.sleep(700);
    stop = true;
    await Promise.all(loops);
    const want = JSON.stringify(sorted(churners.filter((_, i) => i % 2 === 0).map((s) => s.id)));
    const c1 = h.client(C.url, "/", { transports: ["websocket"] });
    await h.connected(c1);
    for (const [name, s] of [["A", churners[0]], ["B", b1], ["C", c1]]) {
      let last;
      await h.until(
        async () => (last = JSON.stringify(sorted((await h.ack(s, "room-members", room)).members))) === want,
        `node ${name}'s view of the room after the churn (last: ${last})`,
        5000
      );
    }
    await C.stop();
    extra.splice(extra.indexOf(C), 1);
  });

  it("a node killed with SIGKILL leaves the other nodes' view in bounded time", async () => {
    const D = await ch.startNode(redis, { prefix, id: "node-D" });
    extra.push(D);
    await ch.waitMirror([A, B, D]);
    const [a1, b1, d1, d2] = await clientsOn(A, B, D, D);
    const room = roomName("kill");
    const onlyD = roomName("only-d");
    const seenA = watch(a1, ["leave-room", "delete-room"]);
    const seenB = watch(b1, ["leave-room", "delete-room"]);
    for (const s of [a1, b1, d1, d2]) await h.ack(s, "join-room", room);
    await h.ack(d1, "join-room", onlyD);
    await h.until(async () => (await h.ack(a1, "room-members", room)).members.length === 4, "4 members seen from A");
    // The clients of the dead node would reconnect elsewhere in real life; here they just go.
    for (const s of [d1, d2]) s.io.reconnection(false);

    const deadIds = [d1.id, d2.id];
    const killedAt = Date.now();
    D.child.kill("SIGKILL");
    await D.exited;
    let goneA = null;
    let goneB = null;
    await h.until(
      async () => {
        if (goneA === null) {
          const res = await h.ack(a1, "list-rooms");
          const r = res.rooms.find((x) => x.room === room);
          if (r && r.size === 2 && !res.rooms.some((x) => x.room === onlyD)) goneA = Date.now() - killedAt;
        }
        if (goneB === null) {
          const res = await h.ack(b1, "list-rooms");
          const r = res.rooms.find((x) => x.room === room);
          if (r && r.size === 2 && !res.rooms.some((x) => x.room === onlyD)) goneB = Date.now() - killedAt;
        }
        return goneA !== null && goneB !== null;
      },
      "the killed node's members to leave the view of A and B",
      8000
    );
    console.log(`# SIGKILLed node left the room view after ${goneA} ms (node A) and ${goneB} ms (node B); design: heartbeat 1 s, dead after 3.5 s`);
    assert.ok(goneA <= 6000 && goneB <= 6000, `a dead node leaves the view within 6 s (took ${goneA} / ${goneB} ms)`);

    // Local members heard leave-room for each of the dead node's members, nothing else.
    await h.until(() => seenA.length >= 2 && seenB.length >= 2, "leave-room presence for the dead node's members", 2000);
    await h.sleep(QUIET_MS);
    for (const seen of [seenA, seenB]) {
      assert.deepEqual(
        sorted(seen.map(([e, p]) => `${e} ${p.room} ${p.id}`)),
        sorted(deadIds.map((id) => `leave-room ${room} ${id}`))
      );
    }
    assert.deepEqual(sorted((await h.ack(b1, "room-members", room)).members), sorted([a1.id, b1.id]));
    assert.deepEqual((await h.ack(a1, "room-members", onlyD)).members, []);
    // Sizes in acks follow too.
    assert.deepEqual(await h.ack(b1, "leave-room", room), { ok: true, room, size: 1 });
    extra.splice(extra.indexOf(D), 1);
  });

  it("a node killed and restarted at once under the same FERRIO_NODE_ID: its old members leave, with presence", async () => {
    const env = { FERRIO_NODE_ID: "node-E" };
    let E = await ch.startNode(redis, { prefix, id: "node-E", env });
    extra.push(E);
    await ch.waitMirror([A, B, E]);
    const [a1, e1, e2] = await clientsOn(A, E, E);
    const room = roomName("restart");
    const seenA = watch(a1, ["leave-room", "delete-room"]);
    for (const s of [a1, e1, e2]) await h.ack(s, "join-room", room);
    await h.until(async () => (await h.ack(a1, "room-members", room)).members.length === 3, "3 members seen from A");
    for (const s of [e1, e2]) s.io.reconnection(false);
    const deadIds = [e1.id, e2.id];

    E.child.kill("SIGKILL");
    await E.exited;
    extra.splice(extra.indexOf(E), 1);
    // A supervisor restarts it well within the node timeout.
    const restartedAt = Date.now();
    E = await ch.startNode(redis, { prefix, id: "node-E", env });
    extra.push(E);
    await h.until(
      async () => JSON.stringify((await h.ack(a1, "room-members", room)).members) === JSON.stringify([a1.id]),
      "the old incarnation's members to leave A's view",
      8000
    );
    await h.until(() => seenA.length >= 2, "leave-room presence for the old incarnation's members", 8000);
    console.log(`# restarted node: old members left A's view, with presence, ${Date.now() - restartedAt} ms after the restart`);
    await h.sleep(QUIET_MS);
    assert.deepEqual(sorted(seenA.map(([e, p]) => `${e} ${p.room} ${p.id}`)), sorted(deadIds.map((id) => `leave-room ${room} ${id}`)));
    // The new incarnation takes part normally (once the others' snapshots reached it: one
    // Redis round trip after it turned ready).
    const e3 = h.client(E.url, "/", { transports: ["websocket"] });
    await h.connected(e3);
    await h.until(
      async () => JSON.stringify((await h.ack(e3, "room-members", room)).members) === JSON.stringify([a1.id]),
      "the restarted node's view of the room",
      3000
    );
    const hear = h.once(a1, "join-room");
    assert.deepEqual(await h.ack(e3, "join-room", room), { ok: true, room, size: 2 });
    assert.deepEqual((await hear)[0], { room, id: e3.id });
    await E.stop();
    extra.splice(extra.indexOf(E), 1);
  });
});
