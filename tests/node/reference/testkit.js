// Reference implementation of ferrio's testkit (hub + test events) on the official Node.js
// socket.io server. It reads the same FERRIO_* variables and prints the same "listening on" line,
// so the cross-implementation tests can be run against it to check that their expectations are
// what Node itself does:   FERRIO_TEST_SERVER=reference node --test *.test.js
//
// It is a test oracle, not part of ferrio: the contract it follows is DESIGN.md ("The hub") and
// the testkit events listed in tests/node/README.md.
"use strict";

const http = require("node:http");
const { Server } = require("socket.io");

const env = process.env;
const host = env.FERRIO_HOST || "0.0.0.0";
const port = Number(env.FERRIO_PORT || 3000);
const path = env.FERRIO_PATH || "/socket.io/";
const namespaces = (env.FERRIO_NAMESPACES || "/").split(",").map((s) => s.trim());
const hubOnly = process.argv.includes("--hub-only");

const RESERVED = new Set([
  "connect",
  "connect_error",
  "disconnect",
  "disconnecting",
  "newListener",
  "removeListener",
]);

const httpServer = http.createServer((req, res) => {
  if (req.url === "/healthz" || req.url === "/readyz") {
    res.writeHead(200, { "content-type": "text/plain" });
    res.end("ok\n");
  }
});

let cors;
if (env.FERRIO_CORS_ORIGINS) {
  const v = env.FERRIO_CORS_ORIGINS.trim();
  cors = { origin: v === "*" ? "*" : v.split(",").map((s) => s.trim()), credentials: v !== "*" };
}

const io = new Server(httpServer, {
  path,
  cors,
  pingInterval: Number(env.FERRIO_PING_INTERVAL_MS || 25000),
  pingTimeout: Number(env.FERRIO_PING_TIMEOUT_MS || 20000),
  connectTimeout: Number(env.FERRIO_CONNECT_TIMEOUT_MS || 45000),
  maxHttpBufferSize: Number(env.FERRIO_MAX_PAYLOAD || 1000000),
});

/** socket id -> server-side disconnect reason (kept after the disconnect, for `disconnect-reason`). */
const reasons = new Map();

function knownSocketId(id) {
  for (const nsp of io._nsps.values()) if (nsp.sockets.has(id)) return true;
  return false;
}

function badRoom(room) {
  if (typeof room !== "string") return "room must be a string";
  if (room.length === 0) return "room must not be empty";
  if (Buffer.byteLength(room, "utf8") > 256) return "room is longer than 256 bytes";
  if (knownSocketId(room)) return "room is a socket id";
  return null;
}

/** Splits a trailing ack callback off the arguments. */
function split(args) {
  const ack = typeof args[args.length - 1] === "function" ? args.pop() : () => {};
  return [args, ack];
}

function hub(nsp, socket) {
  const rooms = nsp.adapter.rooms;
  const size = (room) => (rooms.get(room) ? rooms.get(room).size : 0);
  const on = (event, fn) =>
    socket.on(event, (...raw) => {
      const [args, ack] = split(raw);
      fn(args, ack);
    });

  on("join-room", ([room], ack) => {
    const bad = badRoom(room);
    if (bad) return ack({ ok: false, error: bad });
    if (!socket.rooms.has(room)) {
      socket.join(room);
      socket.to(room).emit("join-room", { room, id: socket.id });
    }
    ack({ ok: true, room, size: size(room) });
  });
  on("leave-room", ([room], ack) => {
    const bad = badRoom(room);
    if (bad) return ack({ ok: false, error: bad });
    if (socket.rooms.has(room)) {
      socket.leave(room);
      socket.to(room).emit("leave-room", { room, id: socket.id });
    }
    ack({ ok: true, room, size: size(room) });
  });
  on("delete-room", ([room], ack) => {
    const bad = badRoom(room);
    if (bad) return ack({ ok: false, error: bad });
    if (rooms.has(room)) {
      nsp.to(room).emit("delete-room", { room });
      nsp.in(room).socketsLeave(room);
    }
    ack({ ok: true, room });
  });
  on("list-rooms", (_args, ack) => {
    const list = [];
    for (const [room, members] of rooms) {
      if (!nsp.sockets.has(room)) list.push({ room, size: members.size });
    }
    ack({ ok: true, rooms: list });
  });
  on("room-members", ([room], ack) => {
    const bad = badRoom(room);
    if (bad) return ack({ ok: false, error: bad });
    ack({ ok: true, room, members: [...(rooms.get(room) || [])] });
  });
  on("to-room", ([room, event, ...args], ack) => {
    const bad = badRoom(room);
    if (bad) return ack({ ok: false, error: bad });
    if (typeof event !== "string" || event.length === 0) {
      return ack({ ok: false, error: "event must be a non-empty string" });
    }
    if (RESERVED.has(event)) return ack({ ok: false, error: `event "${event}" is reserved` });
    socket.to(room).emit(event, ...args);
    ack({ ok: true });
  });
  socket.on("disconnecting", () => {
    for (const room of socket.rooms) {
      if (room !== socket.id) socket.to(room).emit("leave-room", { room, id: socket.id });
    }
  });
}

function testEvents(nsp, socket) {
  socket.emit("welcome", { id: socket.id, ns: nsp.name, auth: socket.handshake.auth || {} });
  socket.on("echo", (...args) => socket.emit("echo", ...args));
  socket.on("echo-ack", (...raw) => {
    const [args, ack] = split(raw);
    ack(...args);
  });
  socket.on("server-ack", (req, ack) => {
    socket.timeout(req.timeout_ms).emit(req.event, ...(req.args || []), (err, ...args) => {
      if (typeof ack !== "function") return;
      ack(err ? { ok: false, error: "timeout" } : { ok: true, args });
    });
  });
  socket.on("server-disconnect", () => socket.disconnect());
  socket.on("server-close", () => socket.conn.close());
  socket.on("disconnect-reason", (id, ack) => ack({ reason: reasons.get(id) ?? null }));
}

function serve(nsp) {
  nsp.on("connection", (socket) => {
    socket.on("disconnect", (reason) => reasons.set(socket.id, reason));
    hub(socket.nsp, socket);
    if (!hubOnly) testEvents(socket.nsp, socket);
  });
}

for (const ns of namespaces) {
  if (ns.endsWith("*")) {
    const prefix = ns.slice(0, -1).replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    serve(io.of(new RegExp(`^${prefix}`)));
  } else {
    serve(io.of(ns));
  }
}

httpServer.listen(port, host, () => {
  console.log(`reference testkit listening on http://${host}:${httpServer.address().port}`);
});
const stop = () => {
  io.close();
  httpServer.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
