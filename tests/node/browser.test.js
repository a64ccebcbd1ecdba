// A real browser (Debian's Chromium, driven by playwright-core) runs socket.io-client's browser
// bundle on a page from another origin, joins a room and exchanges messages through ferrio with a
// Node.js client. With FERRIO_CORS_ORIGINS unset the browser must refuse the polling requests.
"use strict";

const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const http = require("node:http");
const os = require("node:os");
const path = require("node:path");
const { chromium } = require("playwright-core");
const h = require("./helpers");

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const BUNDLE = path.join(__dirname, "node_modules", "socket.io-client", "dist", "socket.io.min.js");
const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>ferrio browser test</title>
<script src="/socket.io.min.js"></script></head>
<body><p id="status">loaded</p></body></html>`;

/** A static server on its own port (so its origin differs from ferrio's): the page and the bundle. */
async function startStatic() {
  const bundle = fs.readFileSync(BUNDLE);
  const srv = http.createServer((req, res) => {
    if (req.url === "/" || req.url === "/index.html") {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      res.end(PAGE);
    } else if (req.url === "/socket.io.min.js") {
      res.writeHead(200, { "content-type": "text/javascript; charset=utf-8" });
      res.end(bundle);
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise((resolve) => srv.listen(0, "127.0.0.1", resolve));
  return { srv, origin: `http://127.0.0.1:${srv.address().port}` };
}

/** Runs in the page: connects with `transports`, records `msg` events, joins `room`. */
async function pageConnect({ url, transports, room }) {
  const s = window.io(url, { transports, reconnection: false, timeout: 5000 });
  window.sock = s;
  window.got = [];
  window.errors = [];
  s.on("msg", (...args) =>
    window.got.push(args.map((a) => (a instanceof ArrayBuffer ? { bytes: [...new Uint8Array(a)] } : a)))
  );
  s.on("connect_error", (e) => window.errors.push(e.message));
  window.presence = [];
  s.on("join-room", (p) => window.presence.push(["join-room", p]));
  s.on("leave-room", (p) => window.presence.push(["leave-room", p]));
  await new Promise((resolve, reject) => {
    s.once("connect", resolve);
    s.once("connect_error", (e) => reject(new Error(`connect_error: ${e.message}`)));
  });
  if (transports.length > 1 && s.io.engine.transport.name !== "websocket") {
    await new Promise((resolve, reject) => {
      s.io.engine.once("upgrade", resolve);
      setTimeout(() => reject(new Error("no upgrade within 5 s")), 5000);
    });
  }
  const join = await s.timeout(5000).emitWithAck("join-room", room);
  return { id: s.id, transport: s.io.engine.transport.name, join };
}

describe("browser", () => {
  let context;
  let userDataDir;
  let stat;

  before(async () => {
    assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install chromium`);
    stat = await startStatic();
    userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "ferrio-chromium-"));
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      timeout: 30000,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
  });

  after(async () => {
    h.closeClients();
    if (context) await h.within(15000, "chromium to close", context.close()).catch(() => {});
    if (stat) stat.srv.close();
    if (userDataDir) fs.rmSync(userDataDir, { recursive: true, force: true });
  });

  async function openPage() {
    const page = await context.newPage();
    page.setDefaultTimeout(10000);
    await page.goto(`${stat.origin}/`);
    assert.equal(await page.evaluate(() => typeof window.io), "function", "the bundle must load");
    return page;
  }

  describe("with FERRIO_CORS_ORIGINS set to the page's origin", () => {
    let server;
    before(async () => {
      server = await h.startServer({ kind: "ferrio", env: { FERRIO_CORS_ORIGINS: stat.origin } });
    });
    after(async () => {
      if (server) await server.stop();
    });

    const cases = [
      ["polling", ["polling"], "polling"],
      ["websocket", ["websocket"], "websocket"],
      ["polling upgraded to websocket", ["polling", "websocket"], "websocket"],
    ];
    for (const [label, transports, expectedTransport] of cases) {
      it(`exchanges room messages with a Node client over ${label}`, async () => {
        const page = await openPage();
        try {
          const room = `browser-${label.replace(/\W+/g, "-")}`;
          const info = await page.evaluate(pageConnect, { url: server.url, transports, room });
          assert.match(info.id, /^[A-Za-z0-9_-]{20}$/);
          assert.equal(info.transport, expectedTransport);
          assert.deepEqual(info.join, { ok: true, room, size: 1 });

          const node = h.client(server.url, "/", { transports: ["websocket"] });
          await h.connectOnly(node);
          assert.deepEqual(await h.ack(node, "join-room", room), { ok: true, room, size: 2 });

          // Node -> browser, JSON and binary
          assert.deepEqual(await h.ack(node, "to-room", room, "msg", "from node", { n: 1 }), { ok: true });
          assert.deepEqual(await h.ack(node, "to-room", room, "msg", Buffer.from([1, 2, 3, 250])), { ok: true });
          await page.waitForFunction(() => window.got.length >= 2, null, { timeout: 5000 });
          const got = await page.evaluate(() => window.got);
          assert.deepEqual(got, [["from node", { n: 1 }], [{ bytes: [1, 2, 3, 250] }]]);

          // browser -> Node
          const nodeHears = h.once(node, "msg");
          const ack = await page.evaluate(
            (r) => window.sock.timeout(5000).emitWithAck("to-room", r, "msg", "from browser", [true]),
            room
          );
          assert.deepEqual(ack, { ok: true });
          assert.deepEqual(await nodeHears, ["from browser", [true]]);

          // presence reached the browser when the Node client joined, and does when it leaves
          assert.deepEqual(await h.ack(node, "leave-room", room), { ok: true, room, size: 1 });
          await page.waitForFunction(() => window.presence.length >= 2, null, { timeout: 5000 });
          assert.deepEqual(await page.evaluate(() => window.presence), [
            ["join-room", { room, id: node.id }],
            ["leave-room", { room, id: node.id }],
          ]);
          assert.equal(await page.evaluate(() => window.sock.connected), true);
        } finally {
          await page.evaluate(() => window.sock && window.sock.disconnect()).catch(() => {});
          await page.close();
        }
      });
    }
  });

  describe("with FERRIO_CORS_ORIGINS unset", () => {
    let server;
    before(async () => {
      server = await h.startServer({ kind: "ferrio" });
    });
    after(async () => {
      if (server) await server.stop();
    });

    it("the browser refuses the cross-origin polling requests", async () => {
      const page = await openPage();
      try {
        const outcome = await page.evaluate(
          ({ url }) =>
            new Promise((resolve) => {
              const s = window.io(url, { transports: ["polling"], reconnection: false, timeout: 5000 });
              window.sock = s;
              s.once("connect", () => resolve({ connected: true }));
              s.once("connect_error", (e) => resolve({ connected: false, error: e.message }));
            }),
          { url: server.url }
        );
        assert.equal(outcome.connected, false, "the page must not connect without CORS headers");
        assert.match(outcome.error, /xhr poll error|poll|cors|network/i);
        await h.sleep(500);
        assert.equal(await page.evaluate(() => window.sock.connected), false);
      } finally {
        await page.evaluate(() => window.sock && window.sock.close()).catch(() => {});
        await page.close();
      }
    });
  });
});
