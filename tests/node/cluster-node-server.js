// A Node.js socket.io 4.8.x node in a ferrio cluster: @socket.io/redis-adapter 8.3.x (classic,
// createAdapter) with pub/sub clients from `redis` 4.x, run inside the test process so the test
// can call its server API (fetchSockets, allRooms, serverSideEmit, socketsJoin, …) directly.
"use strict";

const http = require("node:http");
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-adapter");
const { Emitter } = require("@socket.io/redis-emitter");
const { createClient } = require("redis");

/** Redis clients with errors logged instead of crashing the test process. */
function redisClient(url) {
  const c = createClient({ url, socket: { reconnectStrategy: false, connectTimeout: 3000 } });
  c.on("error", (err) => {
    if (process.env.FERRIO_TEST_VERBOSE) console.error(`# redis client (${url}): ${err.message}`);
  });
  return c;
}

/**
 * Starts the Node node on 127.0.0.1 (free port) with namespaces `namespaces`.
 * On connection a socket joins `auth.rooms` (a list) and can ask `node-info`.
 * Every serverSideEmit it receives (in `/`) lands in `serverSideEmits` as [event, ...args];
 * one with an ack is answered `{node:"node-io", data:[event, ...args]}`.
 */
async function startNodeIo({ redisUrl, prefix, namespaces = ["/"], requestsTimeout = 3000 }) {
  const pub = redisClient(redisUrl);
  const sub = pub.duplicate();
  sub.on("error", () => {});
  await Promise.all([pub.connect(), sub.connect()]);
  const httpServer = http.createServer();
  const io = new Server(httpServer, {
    adapter: createAdapter(pub, sub, { key: prefix, requestsTimeout }),
  });
  const serverSideEmits = [];
  for (const name of namespaces) {
    const nsp = io.of(name);
    nsp.on("connection", (socket) => {
      const rooms = socket.handshake.auth && socket.handshake.auth.rooms;
      if (Array.isArray(rooms)) socket.join(rooms);
      socket.emit("welcome", { id: socket.id, ns: name, auth: socket.handshake.auth, node: "node-io" });
      socket.on("node-info", (cb) => typeof cb === "function" && cb({ node: "node-io" }));
    });
  }
  // serverSideEmit listeners (any event name): socket.io calls the namespace's listeners.
  const main = io.of("/");
  const original = main._onServerSideEmit.bind(main);
  main._onServerSideEmit = (args) => {
    const last = args[args.length - 1];
    const ack = typeof last === "function" ? last : null;
    const data = ack ? args.slice(0, -1) : args;
    serverSideEmits.push(data);
    if (ack) ack({ node: "node-io", data });
    else original(args);
  };
  await new Promise((resolve) => httpServer.listen(0, "127.0.0.1", resolve));
  const { port } = httpServer.address();
  return {
    io,
    port,
    url: `http://127.0.0.1:${port}`,
    serverSideEmits,
    async close() {
      io.disconnectSockets(true);
      await new Promise((resolve) => io.close(() => resolve()));
      // QUIT lets the adapter's pending UNSUBSCRIBEs finish (disconnect() would reject them).
      await Promise.allSettled([pub.quit(), sub.quit()]);
    },
  };
}

/** An @socket.io/redis-emitter 5.1.x on its own Redis client. */
async function startEmitter({ redisUrl, prefix }) {
  const client = redisClient(redisUrl);
  await client.connect();
  const emitter = new Emitter(client, { key: prefix });
  return {
    emitter,
    async close() {
      await client.quit().catch(() => {});
    },
  };
}

module.exports = { startNodeIo, startEmitter };
