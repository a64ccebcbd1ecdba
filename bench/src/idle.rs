//! `idle`: hold N connections for S seconds; the server's RSS per connection and CPU while idle.
//!
//! RSS is read from `/proc/<pid>/status` before any connection (the baseline), once all are up,
//! and at the end of the hold; per-connection cost = (end − baseline) / connections alive.

use std::rc::Rc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::client::{self, Counters, Endpoint};
use crate::stats::{self, CpuWindow};
use crate::Setup;

/// What `idle` was asked to do.
pub struct IdleArgs {
    pub conns: usize,
    pub secs: f64,
    /// Pause between the last connection and the first RSS sample.
    pub settle_secs: f64,
    /// Send SIGUSR2 to the servers before each RSS sample (the Node peer runs a full GC on it).
    pub gc_signal: bool,
}

async fn idle_conn(ep: Rc<Endpoint>, i: usize, setup: Rc<Setup>, counters: Rc<Counters>) {
    let permit = setup.gate.acquire().await;
    let ws = match client::connect(&ep, i, setup.connect_timeout).await {
        Ok(ws) => ws,
        Err(e) => {
            counters.fail("connect", &e);
            return;
        }
    };
    drop(permit);
    Counters::bump(&counters.connected);
    Counters::bump(&counters.ready);
    client::hold(ws, &counters).await;
}

async fn gc(pids: &[u32], enabled: bool) {
    if !enabled {
        return;
    }
    for pid in pids {
        // Best effort: a failed signal only means the sample includes garbage.
        let _ = std::process::Command::new("kill")
            .args(["-USR2", &pid.to_string()])
            .status();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Runs the scenario and returns its JSON result.
pub async fn run(ep: Rc<Endpoint>, setup: Rc<Setup>, args: IdleArgs) -> Value {
    let pids = setup.pids.clone();
    gc(&pids, args.gc_signal).await;
    let baseline = stats::rss_sum_kib(&pids);
    let counters = Rc::new(Counters::default());
    let t0 = Instant::now();
    for i in 0..args.conns {
        tokio::task::spawn_local(idle_conn(ep.clone(), i, setup.clone(), counters.clone()));
    }
    let total = args.conns as u64;
    let all_up = client::wait_until(t0 + setup.setup_timeout, || counters.settled() >= total).await;
    let connect_s = stats::round1(t0.elapsed().as_secs_f64());

    tokio::time::sleep(Duration::from_secs_f64(args.settle_secs)).await;
    gc(&pids, args.gc_signal).await;
    let rss_loaded = stats::rss_sum_kib(&pids);
    let cpu = CpuWindow::start(&pids);
    tokio::time::sleep(Duration::from_secs_f64(args.secs)).await;
    let window = cpu.finish();
    gc(&pids, args.gc_signal).await;
    let rss_end = stats::rss_sum_kib(&pids);

    let alive = counters.ready.get().saturating_sub(counters.dropped.get());
    let per_conn = |rss: Option<u64>| -> Option<u64> {
        let grown = rss?.checked_sub(baseline?)?;
        (alive > 0).then(|| grown * 1024 / alive)
    };
    json!({
        "scenario": "idle",
        "ok": all_up && alive == total,
        "conns": args.conns,
        "alive": alive,
        "sources": ep.sources.len(),
        "connect_s": connect_s,
        "hold_s": args.secs,
        "rss_baseline_kib": baseline,
        "rss_loaded_kib": rss_loaded,
        "rss_end_kib": rss_end,
        "rss_per_conn_bytes": per_conn(rss_end),
        "rss_per_conn_loaded_bytes": per_conn(rss_loaded),
        "cpu": window,
        "counters": counters.to_json(),
    })
}
