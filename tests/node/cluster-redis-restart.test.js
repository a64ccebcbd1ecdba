// Redis stopped (SIGTERM) and restarted on the same port while two ferrio nodes run: local
// delivery goes on and says so, /readyz follows Redis, and the cluster heals without restarting
// ferrio (the bridge reconnects with backoff ≤ 5 s, resubscribes and resyncs the room view).
"use strict";

const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const h = require("./helpers");
const ch = require("./cluster-helpers");

const QUIET_MS = 400;
const sorted = (a) => [...a].sort();

describe("cluster: Redis restarted under two ferrio nodes", { skip: ch.skipReason() || false }, () => {
  let redis;
  let A;
  let B;

  before(async () => {
    redis = await ch.startRedis();
    const prefix = ch.uniquePrefix("restart");
    [A, B] = await Promise.all([
      ch.startNode(redis, { prefix, id: "restart-A" }),
      ch.startNode(redis, { prefix, id: "restart-B" }),
    ]);
    await ch.waitMembers(redis, prefix, 2);
    await ch.waitMirror([A, B]);
  });

  after(async () => {
    h.closeClients();
    await Promise.all([A, B].filter(Boolean).map((s) => s.stop()));
    if (redis) await redis.stop("SIGKILL");
  });

  it("local delivery while Redis is down, cross-node delivery again after it returns", async () => {
    const room = `restart-${process.pid}`;
    const clients = [
      h.client(A.url, "/", { transports: ["websocket"] }),
      h.client(A.url, "/", { transports: ["polling"] }),
      h.client(B.url, "/", { transports: ["websocket"] }),
    ];
    await Promise.all(clients.map((s) => h.connected(s)));
    const [a1, a2, b1] = clients;
    for (const s of clients) await h.ack(s, "join-room", room);
    const got = new Map(clients.map((s) => [s, h.record(s, "msg")]));
    const texts = (s) => got.get(s).map((x) => x[0]);

    // Healthy cluster first.
    assert.deepEqual(await h.ack(a1, "to-room", room, "msg", "before"), { ok: true });
    await h.until(() => texts(a2).includes("before") && texts(b1).includes("before"), "delivery before the outage");

    // Redis goes away.
    const downAt = Date.now();
    await redis.stop("SIGTERM");
    const notReadyA = await ch.waitReady(A, 503, 5000);
    await ch.waitReady(B, 503, 5000);
    console.log(`# /readyz turned 503 ${Date.now() - downAt} ms after SIGTERM to Redis (A: ${notReadyA} ms of polling)`);
    assert.equal((await h.httpGet(`${A.url}/healthz`)).status, 200, "the process itself stays healthy");

    assert.deepEqual(await h.ack(a1, "to-room", room, "msg", "during"), { ok: true, local_only: true });
    await h.until(() => texts(a2).includes("during"), "local delivery while Redis is down");
    await h.sleep(QUIET_MS);
    assert.ok(!texts(b1).includes("during"), "nothing crosses nodes while Redis is down");
    assert.ok(!texts(a1).includes("during"), "the sender still never hears its own relay");

    // Membership keeps changing locally during the outage; the view must catch up afterwards.
    const a3 = h.client(A.url, "/", { transports: ["websocket"] });
    await h.connected(a3);
    got.set(a3, h.record(a3, "msg"));
    assert.equal((await h.ack(a3, "join-room", room)).ok, true);

    // Redis comes back on the same port, ~2 s after it went.
    await h.sleep(Math.max(0, 2000 - (Date.now() - downAt)));
    const upAt = Date.now();
    await redis.start();
    await Promise.all([ch.waitReady(A, 200, 8000), ch.waitReady(B, 200, 8000)]);
    const readyAfter = Date.now() - upAt;
    console.log(`# both nodes ready ${readyAfter} ms after Redis came back (backoff is capped at 5 s)`);
    assert.ok(readyAfter <= 6500, `reconnected within the 5 s backoff cap (+ margin): ${readyAfter} ms`);

    // Cross-node delivery works again, both ways, without restarting ferrio.
    await h.until(
      async () => {
        await h.ack(a1, "to-room", room, "msg", "after-a1");
        await h.sleep(100);
        return texts(b1).includes("after-a1");
      },
      "A→B delivery after Redis returned",
      5000
    );
    assert.deepEqual(await h.ack(b1, "to-room", room, "msg", "after-b1"), { ok: true });
    await h.until(
      () => [a1, a2, a3].every((s) => texts(s).includes("after-b1")),
      "B→A delivery after Redis returned, also to the member that joined during the outage"
    );

    // The room view heals: B sees a3 (joined during the outage) and the right size.
    const want = sorted([a1.id, a2.id, a3.id, b1.id]);
    await h.until(
      async () => JSON.stringify(sorted((await h.ack(b1, "room-members", room)).members)) === JSON.stringify(want),
      "B's view of the room to include the member that joined during the outage",
      5000
    );
    assert.deepEqual((await h.ack(b1, "list-rooms")).rooms.find((r) => r.room === room), { room, size: 4 });
    assert.deepEqual((await h.ack(a1, "list-rooms")).rooms.find((r) => r.room === room), { room, size: 4 });
  });
});

describe("cluster: a Redis outage longer than the node timeout", { skip: ch.skipReason() || false }, () => {
  let redis;
  let A;
  let B;

  before(async () => {
    redis = await ch.startRedis();
    const prefix = ch.uniquePrefix("outage");
    [A, B] = await Promise.all([
      ch.startNode(redis, { prefix, id: "outage-A" }),
      ch.startNode(redis, { prefix, id: "outage-B" }),
    ]);
    await ch.waitMembers(redis, prefix, 2);
    await ch.waitMirror([A, B]);
  });

  after(async () => {
    h.closeClients();
    await Promise.all([A, B].filter(Boolean).map((s) => s.stop()));
    if (redis) await redis.stop("SIGKILL");
  });

  it("does not tell anyone that members of live nodes left, and the view is whole afterwards", async () => {
    const room = `outage-${process.pid}`;
    const clients = [
      h.client(A.url, "/", { transports: ["websocket"] }),
      h.client(B.url, "/", { transports: ["websocket"] }),
      h.client(B.url, "/", { transports: ["polling"] }),
    ];
    await Promise.all(clients.map((s) => h.connected(s)));
    const [a1, b1, b2] = clients;
    const heard = new Map(clients.map((s) => [s, h.record(s, "leave-room")]));
    for (const s of clients) await h.ack(s, "join-room", room);
    await h.until(async () => (await h.ack(a1, "room-members", room)).members.length === 3, "3 members seen from A");

    await redis.stop("SIGTERM");
    await ch.waitReady(A, 503, 5000);
    // Longer than the 3.5 s after which a silent node is taken for dead.
    await h.sleep(5000);
    await redis.start();
    await Promise.all([ch.waitReady(A, 200, 8000), ch.waitReady(B, 200, 8000)]);
    const want = JSON.stringify(sorted([a1.id, b1.id, b2.id]));
    for (const s of [a1, b1]) {
      await h.until(
        async () => JSON.stringify(sorted((await h.ack(s, "room-members", room)).members)) === want,
        "the whole room in every node's view after the outage",
        5000
      );
    }
    await h.sleep(QUIET_MS);
    for (const [s, got] of heard) {
      assert.deepEqual(got, [], `${s.id} heard leave-room for members that never left`);
    }
  });
});
