//! `cluster`: what a hop through Redis adds to a broadcast.
//!
//! ```text
//!   publisher A ──▶ node A ──▶ Redis ──▶ node B ──▶ subscribers (on B)     tag s=0, "cross"
//!   publisher B ──────────────────────▶ node B ──▶ subscribers (on B)     tag s=1, "local"
//! ```
//!
//! Both publishers run at the same rate, half a period apart: both paths see the same load, but
//! a message on one path never waits behind the other's fan-out. (With the servers and Redis
//! on one core, publishing both at the same instant measured mostly how long the cross message
//! queued behind the local delivery pass, not the hop: bench/ANALYSIS.md.) The added latency
//! is cross − local at p50 and p99.

use std::rc::Rc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::client::{self, Counters, Endpoint};
use crate::fanout::{self, Publisher};
use crate::stats::{self, CpuWindow};
use crate::Setup;

/// What `cluster` was asked to do.
pub struct ClusterArgs {
    pub subs: usize,
    pub rate: f64,
    pub secs: f64,
    pub size: usize,
    pub room: String,
    pub drain_secs: f64,
}

const CROSS: usize = 0;
const LOCAL: usize = 1;

/// Runs the scenario: subscribers on `node_b`, one publisher on each node.
pub async fn run(
    node_a: Rc<Endpoint>,
    node_b: Rc<Endpoint>,
    setup: Rc<Setup>,
    args: ClusterArgs,
) -> Value {
    let counters = Rc::new(Counters::default());
    let steps = fanout::new_steps(2);
    let room: Rc<str> = Rc::from(args.room.as_str());
    let t0 = Instant::now();
    for i in 0..args.subs {
        tokio::task::spawn_local(fanout::subscriber(
            node_b.clone(),
            i,
            setup.clone(),
            counters.clone(),
            steps.clone(),
            room.clone(),
        ));
    }
    let total = args.subs as u64;
    let deadline = t0 + setup.setup_timeout;
    client::wait_until(deadline, || counters.settled() >= total).await;
    fanout::settle(&counters, Duration::from_secs(1), deadline).await;

    let timeout = setup.connect_timeout;
    let (pub_a, pub_b) = (
        client::connect(&node_a, args.subs, timeout).await,
        client::connect(&node_b, args.subs + 1, timeout).await,
    );
    let (mut pub_a, mut pub_b) = match (pub_a, pub_b) {
        (Ok(a), Ok(b)) => (Publisher::new(a), Publisher::new(b)),
        (a, b) => {
            let why = [a.err(), b.err()]
                .into_iter()
                .flatten()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; ");
            return json!({"scenario": "cluster", "ok": false, "error": format!("publisher: {why}"),
                          "counters": counters.to_json()});
        }
    };
    // Let node A learn about the room if it mirrors membership.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let members = counters.ready.get().saturating_sub(counters.dropped.get());
    let cpu = CpuWindow::start(&setup.pids);
    let half_period = Duration::from_secs_f64(0.5 / args.rate.max(0.001));
    let (a, b) = tokio::join!(
        pub_a.publish(&args.room, CROSS, 0, args.rate, args.secs, args.size),
        async {
            tokio::time::sleep(half_period).await;
            pub_b
                .publish(&args.room, LOCAL, 1, args.rate, args.secs, args.size)
                .await
        },
    );
    let window = cpu.finish();
    let expected = [a.sent * members, b.sent * members];
    let delivered = |k: usize| steps.borrow()[k].delivered;
    let drain = Instant::now() + Duration::from_secs_f64(args.drain_secs);
    let _ = pub_a
        .pump_until(drain, || {
            delivered(CROSS) >= expected[CROSS] && delivered(LOCAL) >= expected[LOCAL]
        })
        .await;

    let steps = steps.borrow();
    let q = |k: usize, p: f64| stats::quantile_ms(&steps[k].latency, p);
    let added =
        |p: f64| -> Option<f64> { Some(((q(CROSS, p)? - q(LOCAL, p)?) * 1000.0).round() / 1000.0) };
    let complete = |k: usize| steps[k].delivered >= expected[k] && expected[k] > 0;
    json!({
        "scenario": "cluster",
        "ok": complete(CROSS) && complete(LOCAL) && a.error.is_none() && b.error.is_none(),
        "subs": args.subs,
        "subscribers": members,
        "rate": args.rate,
        "size": args.size,
        "cross": {
            "sent": a.sent, "expected": expected[CROSS], "delivered": steps[CROSS].delivered,
            "latency": stats::summary(&steps[CROSS].latency), "publisher_error": a.error,
        },
        "local": {
            "sent": b.sent, "expected": expected[LOCAL], "delivered": steps[LOCAL].delivered,
            "latency": stats::summary(&steps[LOCAL].latency), "publisher_error": b.error,
        },
        "added_p50_ms": added(0.50),
        "added_p99_ms": added(0.99),
        "cpu": window,
        "counters": counters.to_json(),
    })
}
