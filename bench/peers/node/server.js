// Node.js socket.io peer for ferrio-bench.
//
// Serves the subset of ferrio's hub the benchmark drives, on the default namespace, with
// socket.io's default settings:
//   join-room, room, ack            -> socket.join(room); ack({ok:true, room, size})
//   to-room, room, event, ...args   -> socket.to(room).emit(event, ...args); ack({ok:true})
//   echo-ack, ...args, ack          -> ack(...args)
// Environment: HOST (default 127.0.0.1), PORT (default 3000), REDIS_URL (set: use
// @socket.io/redis-adapter, for the cluster scenario). Run with `node --expose-gc`; SIGUSR2
// triggers a full GC so idle RSS is measured without garbage.
"use strict";

const http = require("node:http");
const { Server } = require("socket.io");

const host = process.env.HOST || "127.0.0.1";
const port = Number.parseInt(process.env.PORT || "3000", 10);

function splitAck(args) {
  const ack = args.length > 0 && typeof args[args.length - 1] === "function" ? args.pop() : null;
  return [args, ack];
}

async function main() {
  const httpServer = http.createServer();
  const io = new Server(httpServer);

  if (process.env.REDIS_URL) {
    const { createClient } = require("redis");
    const { createAdapter } = require("@socket.io/redis-adapter");
    const pub = createClient({ url: process.env.REDIS_URL });
    const sub = pub.duplicate();
    pub.on("error", (e) => console.error("redis pub error", e.message));
    sub.on("error", (e) => console.error("redis sub error", e.message));
    await Promise.all([pub.connect(), sub.connect()]);
    io.adapter(createAdapter(pub, sub));
  }

  io.on("connection", (socket) => {
    socket.on("join-room", (...raw) => {
      const [args, ack] = splitAck(raw);
      const room = args[0];
      if (typeof room !== "string" || room.length === 0) {
        if (ack) ack({ ok: false, error: "room must be a non-empty string" });
        return;
      }
      socket.join(room);
      const members = io.of("/").adapter.rooms.get(room);
      if (ack) ack({ ok: true, room, size: members ? members.size : 0 });
    });

    socket.on("to-room", (...raw) => {
      const [args, ack] = splitAck(raw);
      const [room, event, ...rest] = args;
      if (typeof room !== "string" || typeof event !== "string") {
        if (ack) ack({ ok: false, error: "room and event must be strings" });
        return;
      }
      socket.to(room).emit(event, ...rest);
      if (ack) ack({ ok: true });
    });

    socket.on("echo-ack", (...raw) => {
      const [args, ack] = splitAck(raw);
      if (ack) ack(...args);
    });
  });

  if (typeof global.gc === "function") {
    process.on("SIGUSR2", () => global.gc());
  }
  const stop = () => {
    io.close();
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);

  httpServer.listen(port, host, () => {
    const addr = httpServer.address();
    console.log(`node socket.io peer listening on ${addr.address}:${addr.port}`);
  });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
