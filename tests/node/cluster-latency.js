#!/usr/bin/env node
// Cross-node vs same-node `to-room` latency on a two-node ferrio cluster over a real
// redis-server (not a test: it asserts nothing and prints its figures).
//
//   cargo build --release --bins --examples && node tests/node/cluster-latency.js [messages]
//
// One sender and one receiver on node A, one receiver on node B, all over WebSocket, in one
// process (one clock). Messages go one at a time: the next is sent when both receivers have the
// previous one, so the figures are latency, not queueing. Each receiver's time is from the
// sender's emit to its own event; "added" is cross-node minus same-node for the same message.
"use strict";

const h = require("./helpers");
const ch = require("./cluster-helpers");

async function main() {
  const total = Number(process.argv[2] || 2000);
  const warmup = 200;
  const redis = await ch.startRedis();
  const prefix = ch.uniquePrefix("latency");
  const kind = process.env.FERRIO_BENCH_KIND || "ferrio";
  const [A, B] = await Promise.all([
    ch.startNode(redis, { prefix, id: "lat-A", kind }),
    ch.startNode(redis, { prefix, id: "lat-B", kind }),
  ]);
  try {
    await ch.waitMembers(redis, prefix, 2);
    const sender = h.client(A.url, "/", { transports: ["websocket"] });
    const same = h.client(A.url, "/", { transports: ["websocket"] });
    const cross = h.client(B.url, "/", { transports: ["websocket"] });
    await Promise.all([sender, same, cross].map((s) => h.connectOnly(s)));
    const room = "latency";
    await h.ack(same, "join-room", room);
    await h.ack(cross, "join-room", room);
    // Until B's view and subscription carry A's relays.
    await h.until(
      async () => {
        const p = h.once(cross, "probe", 300).then(() => true, () => false);
        sender.emit("to-room", room, "probe");
        return p;
      },
      "a first relay A→B",
      10000
    );

    const sameMs = [];
    const crossMs = [];
    const addedMs = [];
    let pending = null;
    const arrive = (which) => (i) => {
      if (!pending || pending.i !== i) return;
      pending[which] = process.hrtime.bigint();
      if (pending.same && pending.cross) pending.done();
    };
    same.on("lat", arrive("same"));
    cross.on("lat", arrive("cross"));
    const t0 = Date.now();
    for (let i = 0; i < warmup + total; i++) {
      const sent = process.hrtime.bigint();
      const p = new Promise((resolve) => {
        pending = { i, same: 0n, cross: 0n, done: resolve };
      });
      sender.emit("to-room", room, "lat", i);
      await h.within(5000, `message ${i}`, p);
      if (i >= warmup) {
        const s = Number(pending.same - sent) / 1e6;
        const c = Number(pending.cross - sent) / 1e6;
        sameMs.push(s);
        crossMs.push(c);
        addedMs.push(c - s);
      }
    }
    const elapsed = Date.now() - t0;
    const fmt = (label, arr) => {
      const s = [...arr].sort((a, b) => a - b);
      const q = (p) => ch.percentile(s, p).toFixed(3);
      return `${label.padEnd(22)} p50 ${q(50)} ms  p90 ${q(90)} ms  p99 ${q(99)} ms  max ${s[s.length - 1].toFixed(3)} ms`;
    };
    console.log(`to-room latency, ${total} messages (+${warmup} warm-up), one at a time, ${elapsed} ms total, server ${kind}`);
    console.log(fmt("same node (A→A)", sameMs));
    console.log(fmt("cross node (A→Redis→B)", crossMs));
    console.log(fmt("added by crossing", addedMs));
    h.closeClients();
  } finally {
    await Promise.all([A.stop(), B.stop()]);
    await redis.stop("SIGKILL");
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  }
);
