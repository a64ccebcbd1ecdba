// Turns the runs of `scripts/bench` (one JSON object per line) into bench/RESULTS.md.
//
//   node bench/report.js RUNS.jsonl META.json OUT.md
//
// Every figure is the median over the rounds, with the spread (min–max) beside it; ratios are
// ferrio's median divided by the peer's; a run whose load generator used ≥ 90% of its core is
// flagged, since then the generator, not the server, may have set the figure.
"use strict";

const fs = require("node:fs");

const [runsPath, metaPath, outPath] = process.argv.slice(2);
if (!runsPath || !metaPath || !outPath) {
  console.error("usage: node bench/report.js RUNS.jsonl META.json OUT.md");
  process.exit(1);
}
const runs = fs
  .readFileSync(runsPath, "utf8")
  .split("\n")
  .filter((l) => l.trim())
  .map((l) => JSON.parse(l));
const meta = JSON.parse(fs.readFileSync(metaPath, "utf8"));

const SERVERS = ["ferrio", "node", "socketioxide"];
const PEERS = ["node", "socketioxide"];
const NAMES = { ferrio: "ferrio", node: "Node socket.io", socketioxide: "socketioxide" };

// What each scenario reports. `get` reads one run's figure (null when absent); `better` says
// which way is good; `targets` are the aims, as bounds on ferrio ÷ peer (ratio) or on
// ferrio's own figure (abs).
const TABLES = [
  {
    scenario: "idle",
    title: "Idle connections",
    levelName: "connections",
    about:
      "Each server holds N idle WebSocket connections; RSS growth over the idle baseline divided by N (Node gets a full GC, via SIGUSR2 and `--expose-gc`, before each sample), and the server's CPU over the hold.",
    metrics: [
      {
        label: "RSS per connection (KiB)",
        get: (r) => (r.rss_per_conn_bytes == null ? null : r.rss_per_conn_bytes / 1024),
        better: "lower",
        digits: 1,
        targets: [
          { peer: "node", op: "<=", value: 0.2, text: "≤ 1/5 of Node" },
          { peer: "socketioxide", op: "<=", value: 0.5, text: "≤ 1/2 of socketioxide" },
        ],
      },
      { label: "server CPU while idle (% of a core)", get: (r) => r.cpu && r.cpu.server_cpu_pct, better: "lower", digits: 1 },
      { label: "connect time (s)", get: (r) => r.connect_s, better: "lower", digits: 1 },
    ],
  },
  {
    scenario: "fanout",
    title: "Fan-out to one room",
    levelName: "subscribers",
    about:
      "N subscribers joined one room; a publisher emits `to-room` with a 100-byte payload at increasing rates (doubling, then one step between the last sustained rate and the first that was not). A rate is *sustained* when every message reached every subscriber, the publisher kept its rate and p99 < 500 ms; the *knee* is the highest rate that also kept p99 < 100 ms. \"none\" means no rate met that bound.",
    metrics: [
      {
        label: "deliveries/s at the knee",
        get: (r) => r.knee && r.knee.deliveries_per_s,
        better: "higher",
        digits: 0,
        saturated: (r) => r.knee && r.knee.gen_saturated,
        targets: [
          { peer: "node", op: ">=", value: 10, text: "≥ 10× Node (at 10k)", level: "10000" },
          { peer: "socketioxide", op: ">=", value: 2, text: "≥ 2× socketioxide (at 10k)", level: "10000" },
        ],
      },
      { label: "p50 at the knee (ms)", get: (r) => r.knee && r.knee.p50_ms, better: "lower", digits: 2 },
      {
        label: "p99 at the knee (ms)",
        get: (r) => r.knee && r.knee.p99_ms,
        better: "lower",
        digits: 2,
        targets: [{ abs: true, op: "<", value: 100, text: "< 100 ms" }],
      },
      {
        label: "sustained deliveries/s (p99 < 500 ms)",
        get: (r) => r.sustained && r.sustained.deliveries_per_s,
        better: "higher",
        digits: 0,
        saturated: (r) => r.sustained && r.sustained.gen_saturated,
      },
      { label: "p99 when sustained (ms)", get: (r) => r.sustained && r.sustained.p99_ms, better: "lower", digits: 1 },
    ],
  },
  {
    scenario: "echo",
    title: "Echo with ack, open loop",
    levelName: "clients",
    about: "Each client emits `echo-ack` with an ack once per second, spread evenly; round trip from emit to ack.",
    metrics: [
      { label: "round trip p50 (ms)", get: (r) => r.rtt && r.rtt.p50_ms, better: "lower", digits: 3 },
      {
        label: "round trip p99 (ms)",
        get: (r) => r.rtt && r.rtt.p99_ms,
        better: "lower",
        digits: 3,
        targets: [{ abs: true, op: "<", value: 2, text: "< 2 ms" }],
      },
      { label: "server CPU (% of a core)", get: (r) => r.cpu && r.cpu.server_cpu_pct, better: "lower", digits: 1 },
    ],
  },
  {
    scenario: "echo-closed",
    title: "Echo with ack, closed loop",
    levelName: "clients × window",
    about: "Each client keeps a window of `echo-ack` requests in flight and sends the next as each ack arrives.",
    metrics: [
      {
        label: "acked messages/s",
        get: (r) => r.acked_per_s,
        better: "higher",
        digits: 0,
        saturated: (r) => r.cpu && r.cpu.gen_saturated,
        targets: [{ peer: "node", op: ">=", value: 5, text: "≥ 5× Node" }],
      },
      { label: "round trip p99 (ms)", get: (r) => r.rtt && r.rtt.p99_ms, better: "lower", digits: 3 },
    ],
  },
  {
    scenario: "cluster",
    title: "Cluster: the cost of a Redis hop",
    levelName: "subscribers",
    about:
      "Two nodes and Redis. Subscribers on node B; one publisher on node A (via Redis) and one on node B (local) publish at the same rate, half a period apart (so neither message waits behind the other's fan-out); added latency = cross − local. socketioxide is not run here.",
    servers: ["ferrio", "node"],
    metrics: [
      {
        label: "added p50 (ms)",
        get: (r) => r.added_p50_ms,
        better: "lower",
        digits: 3,
        targets: [{ abs: true, op: "<", value: 0.5, text: "< 0.5 ms" }],
      },
      { label: "added p99 (ms)", get: (r) => r.added_p99_ms, better: "lower", digits: 3 },
      { label: "cross-node p50 (ms)", get: (r) => r.cross && r.cross.latency && r.cross.latency.p50_ms, better: "lower", digits: 3 },
      { label: "same-node p50 (ms)", get: (r) => r.local && r.local.latency && r.local.latency.p50_ms, better: "lower", digits: 3 },
    ],
  },
];

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function fmt(x, digits) {
  if (x == null || Number.isNaN(x)) return "—";
  if (digits === 0) return Math.round(x).toLocaleString("en-US");
  return x.toFixed(digits);
}

function check(op, x, value) {
  return op === "<=" ? x <= value : op === ">=" ? x >= value : op === "<" ? x < value : x > value;
}

const lines = [];
const out = (s = "") => lines.push(s);

out("# ferrio benchmark results");
out();
out(`Written by \`scripts/bench${meta.quick ? " --quick" : ""}\` on ${meta.date}. ${meta.rounds} round(s), runs interleaved server by server (A B C A B C …); each cell is the median over the rounds with the spread (min–max) in brackets. Ratios are ferrio ÷ peer.`);
if (meta.quick) out("**Quick run**: one round and small sizes; indicative only.");
out();
out("## Machine and versions");
out();
out("| | |");
out("|---|---|");
out(`| cores | ${meta.nproc} (${meta.cpu}) |`);
out(`| memory | ${meta.memory} |`);
out(`| kernel | ${meta.kernel} |`);
out(`| pinning | ${meta.pinning} |`);
for (const [k, v] of Object.entries(meta.versions)) out(`| ${k} | ${v} |`);
out();
out("Server settings: ferrio is `target/release/examples/testkit` (the hub plus `echo-ack`) with `FERRIO_WORKERS=1`, `RUST_LOG=warn`; Node runs `bench/peers/node/server.js` with socket.io's defaults under `node --expose-gc`; socketioxide runs `bench/peers/socketioxide` on a one-worker tokio runtime. All listen on 127.0.0.1 and serve WebSocket only (the generator never polls).");
out();

const notes = [];
for (const table of TABLES) {
  const tableRuns = runs.filter((r) => r.scenario === table.scenario);
  if (tableRuns.length === 0) continue;
  const servers = table.servers || SERVERS;
  const peers = PEERS.filter((p) => servers.includes(p));
  const levels = [...new Set(tableRuns.map((r) => String(r.level)))];
  out(`## ${table.title}`);
  out();
  out(table.about);
  out();
  const head = [table.levelName, "figure", ...servers.map((s) => NAMES[s]), ...peers.map((p) => `ferrio ÷ ${NAMES[p]}`), "target"];
  out(`| ${head.join(" | ")} |`);
  out(`|${head.map(() => "---").join("|")}|`);
  for (const level of levels) {
    for (const metric of table.metrics) {
      const med = {};
      const cells = servers.map((s) => {
        const rs = tableRuns.filter((r) => String(r.level) === level && r.server === s);
        if (rs.length === 0) return "not run";
        const skipped = rs.find((r) => r.skipped);
        const vals = rs
          .filter((r) => r.result && r.ok !== false)
          .map((r) => metric.get(r.result))
          .filter((x) => x != null && !Number.isNaN(x));
        if (vals.length === 0) {
          if (skipped) return "skipped";
          return rs.some((r) => r.result && r.ok !== false) ? "none" : "failed";
        }
        med[s] = median(vals);
        const lo = Math.min(...vals);
        const hi = Math.max(...vals);
        let cell = fmt(med[s], metric.digits);
        if (vals.length > 1) cell += ` (${fmt(lo, metric.digits)}–${fmt(hi, metric.digits)})`;
        const failed = rs.length - vals.length;
        if (failed > 0) cell += ` [${failed} of ${rs.length} runs failed]`;
        if (metric.saturated && rs.some((r) => r.result && metric.saturated(r.result))) cell += " ⚠gen≥90%";
        return cell;
      });
      const ratios = peers.map((p) => {
        if (med.ferrio == null || med[p] == null || med[p] === 0) return "—";
        return `${(med.ferrio / med[p]).toFixed(2)}×`;
      });
      const targets = (metric.targets || [])
        .filter((t) => !t.level || t.level === level)
        .map((t) => {
          let x;
          if (t.abs) x = med.ferrio;
          else if (med.ferrio != null && med[t.peer]) x = med.ferrio / med[t.peer];
          if (x == null) return `${t.text}: ?`;
          return `${t.text}: ${check(t.op, x, t.value) ? "met" : "**missed**"}`;
        });
      out(`| ${level} | ${metric.label} | ${cells.join(" | ")} | ${ratios.join(" | ")} | ${targets.join("; ")} |`);
    }
  }
  out();
  for (const r of tableRuns) {
    if (r.note) notes.push(`- ${table.scenario} ${r.level} ${NAMES[r.server] || r.server} round ${r.round}: ${r.note}`);
    const res = r.result;
    if (res && res.counters && res.counters.dropped > 0) {
      const last = (res.steps || []).filter((s) => !s.sustained).map((s) => s.rate)[0];
      const at = last != null ? ` (the ramp ended at ${last} msg/s)` : "";
      notes.push(
        `- ${table.scenario} ${r.level} ${NAMES[r.server] || r.server} round ${r.round}: the server closed ${res.counters.dropped} of its ${res.counters.ready} client connections during the run${at}; first reasons: ${(res.counters.error_samples || []).join("; ")}`,
      );
    }
  }
}

const saturated = runs.filter((r) => r.result && r.result.cpu && r.result.cpu.gen_saturated);
out("## Notes");
out();
if (saturated.length) {
  out(`The load generator used ≥ 90% of its core in ${saturated.length} run(s); there the figure may be the generator's limit, not the server's:`);
  for (const r of saturated) out(`- ${r.scenario} ${r.level} ${NAMES[r.server]} round ${r.round}: generator ${r.result.cpu.gen_cpu_pct}%`);
  out();
}
if (notes.length) {
  out("Failures and skips:");
  out();
  for (const n of [...new Set(notes)]) out(n);
  out();
}
for (const n of meta.notes || []) {
  out(`- ${n}`);
}
out();
out("Raw results: one JSON line per run in `bench/results/runs.jsonl` (written by the same run).");
out();
out("Rerun: `scripts/bench` (full, ≤ 30 min), `scripts/bench --quick` (≤ 5 min), or `scripts/bench [--quick] idle|fanout|echo|cluster`.");
fs.writeFileSync(outPath, lines.join("\n") + "\n");
