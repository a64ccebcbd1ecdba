// Three ferrio nodes + Redis behind a real nginx running the repository's nginx.conf (copied to a
// temp prefix with the upstream and listen ports replaced by free ones). Clients come from
// several source addresses (127.0.0.2, 127.0.0.3, …), so `hash $remote_addr consistent` spreads
// them over the nodes: polling-only clients must keep their sessions (every request of a session
// on one node), WebSocket and upgrading clients too, and a to-room reaches all three nodes.
"use strict";

const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const http = require("node:http");
const path = require("node:path");
const h = require("./helpers");
const ch = require("./cluster-helpers");

/** Fast heartbeats, so that several ping cycles (each a new poll) go through nginx. */
const PING = { FERRIO_PING_INTERVAL_MS: "500", FERRIO_PING_TIMEOUT_MS: "2000" };

describe("cluster behind nginx (repository nginx.conf)", { skip: ch.skipReason({ nginx: true }) || false }, () => {
  let redis;
  let nodes = [];
  let nginx;
  const agents = [];

  before(async () => {
    redis = await ch.startRedis();
    const prefix = ch.uniquePrefix("nginx");
    nodes = await Promise.all(
      ["ngx-1", "ngx-2", "ngx-3"].map((id) => ch.startNode(redis, { prefix, id, env: PING }))
    );
    await ch.waitMembers(redis, prefix, 3);
    await ch.waitMirror(nodes);
    nginx = await ch.startNginx({ upstreams: nodes.map((n) => n.port), port: await h.freePort() });
  });

  after(async () => {
    h.closeClients();
    for (const a of agents) a.destroy();
    if (nginx) await nginx.stop();
    await Promise.all(nodes.map((s) => s.stop()));
    if (redis) await redis.stop("SIGKILL");
  });

  it("the repository's nginx.conf is what runs, with only ports replaced", () => {
    const original = fs.readFileSync(path.join(h.ROOT, "nginx.conf"), "utf8");
    assert.match(original, /hash \$remote_addr consistent;/);
    assert.match(original, /proxy_http_version 1\.1;/);
    assert.match(original, /map \$http_upgrade \$connection_upgrade/);
    const timeout = Number(original.match(/proxy_read_timeout\s+(\d+)s;/)[1]);
    assert.ok(timeout * 1000 > 25000 + 20000, "proxy_read_timeout above pingInterval + pingTimeout");
    const strip = (s) => s.replace(/127\.0\.0\.1:\d+/g, "127.0.0.1:PORT");
    assert.equal(strip(nginx.conf), strip(original));
  });

  /** An http.Agent whose connections leave from `address` (socket.io-client has no localAddress for polling). */
  function agentFrom(address) {
    const agent = new http.Agent({ keepAlive: true, localAddress: address });
    agents.push(agent);
    return agent;
  }

  /** A client through nginx from source address `address`, with the node that serves it. */
  async function clientFrom(address, transports) {
    const opts = { transports, agent: agentFrom(address) };
    if (transports.includes("websocket")) opts.localAddress = address;
    const socket = h.client(nginx.url, "/", opts);
    const lost = [];
    socket.on("disconnect", (r) => lost.push(`disconnect: ${r}`));
    socket.on("connect_error", (e) => lost.push(`connect_error: ${e.message}`));
    await h.connected(socket);
    const { node } = await h.ack(socket, "node-info");
    return { socket, address, node, lost, sid: socket.io.engine.id };
  }

  /** Access-log lines of nginx: [{ from, sid, to }] for Engine.IO requests carrying a sid. */
  function accessLog() {
    const text = fs.readFileSync(path.join(nginx.prefix, "access.log"), "utf8");
    const out = [];
    for (const line of text.split("\n")) {
      const m = line.match(/^(\S+) \[[^\]]*\] "(\S+) (\S+) [^"]*" (\d+) -> (\S+)/);
      if (!m) continue;
      const sid = new URL(m[3], "http://x").searchParams.get("sid");
      out.push({ from: m[1], method: m[2], sid, status: Number(m[4]), to: m[5] });
    }
    return out;
  }

  it("polling-only clients from several source addresses keep their sessions; a to-room reaches all three nodes", async () => {
    // 127.0.0.2 … 127.0.0.5, and more addresses only if those do not cover the three nodes.
    const clients = [];
    for (let i = 2; i <= 40; i++) {
      const covered = new Set(clients.map((c) => c.node)).size === 3;
      if (i > 5 && covered) break;
      clients.push(await clientFrom(`127.0.0.${i}`, ["polling"]));
    }
    const byNode = {};
    for (const c of clients) (byNode[c.node] ||= []).push(c.address);
    console.log(`# polling clients by node: ${JSON.stringify(byNode)}`);
    assert.equal(Object.keys(byNode).length, 3, "the source addresses spread over all three nodes");

    // Several seconds of traffic: echo round trips and heartbeats (a new poll every ping).
    const room = `ngx-${process.pid}`;
    for (const c of clients) assert.equal((await h.ack(c.socket, "join-room", room)).ok, true);
    const deadline = Date.now() + 2500;
    let round = 0;
    while (Date.now() < deadline) {
      round += 1;
      await Promise.all(
        clients.map(async (c) => {
          const [back] = await h.ackAll(c.socket, "echo-ack", { round, from: c.address });
          assert.deepEqual(back, { round, from: c.address });
        })
      );
      await h.sleep(200);
    }
    for (const c of clients) {
      assert.deepEqual(c.lost, [], `${c.address}: no disconnect`);
      assert.equal(c.socket.io.engine.id, c.sid, `${c.address}: same Engine.IO session`);
      assert.equal(c.socket.io.engine.transport.name, "polling");
      assert.deepEqual(await h.ack(c.socket, "node-info"), { node: c.node }, `${c.address}: still on ${c.node}`);
    }

    // A broadcast reaches the members on every node.
    const [sender, ...rest] = clients;
    const got = new Map(rest.map((c) => [c, h.record(c.socket, "ngx-news")]));
    assert.deepEqual(await h.ack(sender.socket, "to-room", room, "ngx-news", "hello all", Buffer.from([9, 9])), { ok: true });
    await h.until(() => [...got.values()].every((g) => g.length === 1), "the to-room on every other client");
    for (const [c, g] of got) {
      assert.equal(g[0][0], "hello all", `${c.address} on ${c.node}`);
      assert.ok(Buffer.isBuffer(g[0][1]));
    }
    assert.equal(new Set(rest.map((c) => c.node)).size >= 2, true);
    assert.equal((await h.ack(sender.socket, "list-rooms")).rooms.find((r) => r.room === room).size, clients.length);

    // nginx's own log: each session's requests came from its source address (the agent works)
    // and went to one node (the hash is sticky).
    const log = accessLog();
    for (const c of clients) {
      const lines = log.filter((l) => l.sid === c.sid);
      assert.ok(lines.length >= 5, `${c.address}: ${lines.length} requests of session ${c.sid} in the access log`);
      assert.deepEqual([...new Set(lines.map((l) => l.from))], [c.address], "requests left from the agent's localAddress");
      assert.equal(new Set(lines.map((l) => l.to)).size, 1, `${c.address}: every request on one upstream`);
      assert.ok(lines.every((l) => l.status === 200), `${c.address}: every request answered 200`);
    }
  });

  it("WebSocket-only and upgrading clients keep their sessions; a to-room reaches all three nodes", async () => {
    const clients = [];
    for (let i = 2; i <= 40; i++) {
      const covered = new Set(clients.map((c) => c.node)).size === 3;
      if (i > 7 && covered) break;
      // Odd addresses open with WebSocket directly, even ones start polling and upgrade.
      const transports = i % 2 ? ["websocket"] : ["polling", "websocket"];
      clients.push(await clientFrom(`127.0.0.${i}`, transports));
    }
    const upgraded = clients.filter((c) => c.socket.io.opts.transports.length === 2);
    await h.until(
      () => upgraded.every((c) => c.socket.io.engine.transport.name === "websocket"),
      "the upgrading clients to be on WebSocket"
    );
    const byNode = {};
    for (const c of clients) (byNode[c.node] ||= []).push(c.address);
    console.log(`# websocket/upgrade clients by node: ${JSON.stringify(byNode)}`);
    assert.equal(Object.keys(byNode).length, 3, "the source addresses spread over all three nodes");

    const room = `ngx-ws-${process.pid}`;
    for (const c of clients) assert.equal((await h.ack(c.socket, "join-room", room)).ok, true);
    await h.sleep(1500); // heartbeats go by
    const [sender, ...rest] = clients;
    const got = new Map(rest.map((c) => [c, h.record(c.socket, "ngx-ws")]));
    assert.deepEqual(await h.ack(sender.socket, "to-room", room, "ngx-ws", { n: 1 }), { ok: true });
    await h.until(() => [...got.values()].every((g) => g.length === 1), "the to-room on every other client");
    for (const c of clients) {
      assert.deepEqual(c.lost, [], `${c.address}: no disconnect`);
      assert.equal(c.socket.io.engine.id, c.sid, `${c.address}: same Engine.IO session`);
      assert.deepEqual(await h.ack(c.socket, "node-info"), { node: c.node });
    }
    // The upgrade's polling requests and its WebSocket request went to the same node.
    const log = accessLog();
    for (const c of upgraded) {
      const lines = log.filter((l) => l.sid === c.sid);
      assert.ok(lines.length >= 2, `${c.address}: requests of ${c.sid} in the log`);
      assert.equal(new Set(lines.map((l) => l.to)).size, 1, `${c.address}: polling and WebSocket on one upstream`);
      assert.deepEqual([...new Set(lines.map((l) => l.from))], [c.address]);
    }
  });
});
