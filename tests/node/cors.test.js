// FERRIO_CORS_ORIGINS: CORS headers on the Engine.IO path when set, none at all when unset.
"use strict";

const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const h = require("./helpers");

const ALLOWED = "http://127.0.0.1:5555";
const HANDSHAKE = "/socket.io/?EIO=4&transport=polling";

function preflight(url, origin) {
  return h.httpGet(
    url + HANDSHAKE,
    {
      Origin: origin,
      "Access-Control-Request-Method": "POST",
      "Access-Control-Request-Headers": "content-type",
    },
    "OPTIONS"
  );
}

describe("CORS with a list of origins", () => {
  let server;
  before(async () => {
    server = await h.startServer({
      kind: "ferrio",
      env: { FERRIO_CORS_ORIGINS: `${ALLOWED},https://app.example.com` },
    });
  });
  after(async () => {
    if (server) await server.stop();
  });

  it("answers an allowed origin's handshake with its origin and credentials", async () => {
    const res = await h.httpGet(server.url + HANDSHAKE, { Origin: ALLOWED });
    assert.equal(res.status, 200);
    assert.equal(res.headers["access-control-allow-origin"], ALLOWED);
    assert.equal(res.headers["access-control-allow-credentials"], "true");
    assert.equal(res.body[0], "0");
  });

  it("answers the preflight of an allowed origin", async () => {
    const res = await preflight(server.url, "https://app.example.com");
    assert.ok(res.status === 204 || res.status === 200, `preflight status ${res.status}`);
    assert.equal(res.headers["access-control-allow-origin"], "https://app.example.com");
    const methods = (res.headers["access-control-allow-methods"] || "").toUpperCase();
    assert.match(methods, /GET/);
    assert.match(methods, /POST/);
    assert.equal(res.headers["access-control-allow-credentials"], "true");
  });

  it("sends no allow-origin for an origin not in the list", async () => {
    const res = await h.httpGet(server.url + HANDSHAKE, { Origin: "http://127.0.0.1:5556" });
    assert.equal(res.headers["access-control-allow-origin"], undefined);
    const pre = await preflight(server.url, "https://evil.example.com");
    assert.equal(pre.headers["access-control-allow-origin"], undefined);
  });

  it("allows the POST of a polling session from an allowed origin", async () => {
    const open = await h.httpGet(server.url + HANDSHAKE, { Origin: ALLOWED });
    const { sid } = JSON.parse(open.body.slice(1));
    const res = await h.httpGet(
      `${server.url}${HANDSHAKE}&sid=${sid}`,
      { Origin: ALLOWED, "Content-Type": "text/plain;charset=UTF-8" },
      "POST",
      "40"
    );
    assert.equal(res.status, 200);
    assert.equal(res.headers["access-control-allow-origin"], ALLOWED);
  });
});

describe("CORS with *", () => {
  let server;
  before(async () => {
    server = await h.startServer({ kind: "ferrio", env: { FERRIO_CORS_ORIGINS: "*" } });
  });
  after(async () => {
    if (server) await server.stop();
  });

  it("allows any origin", async () => {
    const res = await h.httpGet(server.url + HANDSHAKE, { Origin: "https://anything.example" });
    assert.equal(res.status, 200);
    const acao = res.headers["access-control-allow-origin"];
    assert.ok(acao === "*" || acao === "https://anything.example", `allow-origin ${acao}`);
    const pre = await preflight(server.url, "https://other.example");
    assert.ok(pre.status === 204 || pre.status === 200, `preflight status ${pre.status}`);
    assert.ok(pre.headers["access-control-allow-origin"]);
  });
});

describe("CORS unset", () => {
  let server;
  before(async () => {
    server = await h.startServer({ kind: "ferrio" });
  });
  after(async () => {
    if (server) await server.stop();
  });

  it("sends no CORS headers on the handshake", async () => {
    const res = await h.httpGet(server.url + HANDSHAKE, { Origin: ALLOWED });
    assert.equal(res.status, 200, "same-origin and non-browser clients still work");
    for (const name of Object.keys(res.headers)) {
      assert.ok(!name.startsWith("access-control-"), `unexpected header ${name}`);
    }
  });

  it("sends no CORS headers on a preflight", async () => {
    const res = await preflight(server.url, ALLOWED);
    for (const name of Object.keys(res.headers)) {
      assert.ok(!name.startsWith("access-control-"), `unexpected header ${name}`);
    }
  });
});
