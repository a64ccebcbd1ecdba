//! `echo`: clients emit `echo-ack` with an ack and time the round trip.
//!
//! ```text
//! client: 42k["echo-ack",{"s":0,"n":0,"t":µs,"p":"xx…"}]
//! server: 43k[{"s":0,…}]          round trip = ack time − send time
//! ```
//!
//! Open loop (`--rate R`): each client sends R per second, the clients' sends spread evenly
//! over each period. Closed loop (`--closed-loop`): each client keeps `--window` requests in
//! flight and sends the next one as each ack arrives; the figure is acks per second.
//! The first `--warmup` seconds are not measured.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::{FutureExt, SinkExt};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{self, ConnError, Counters, Endpoint, Ws};
use crate::proto::{self, Inbound};
use crate::stats::{self, CpuWindow};
use crate::Setup;

/// What `echo` was asked to do.
pub struct EchoArgs {
    pub clients: usize,
    pub rate: f64,
    pub secs: f64,
    pub warmup: f64,
    pub size: usize,
    pub closed_loop: bool,
    pub window: usize,
}

/// When the measured run starts and ends, sent to every client at once.
#[derive(Clone, Copy)]
struct Plan {
    start: Instant,
    warm_end: Instant,
    end: Instant,
}

/// Results shared by the clients.
struct Shared {
    rtt: RefCell<Histogram<u64>>,
    sent: Cell<u64>,
    acked: Cell<u64>,
    /// Acks received inside the measured window (after warm-up, before the end).
    acked_in_window: Cell<u64>,
    /// Acks whose id matched nothing pending.
    stray_acks: Cell<u64>,
}

/// How long a client waits for outstanding acks after the end.
const GRACE: Duration = Duration::from_secs(2);

struct Client {
    ws: Ws,
    next_id: u64,
    pending: VecDeque<(u64, Instant)>,
}

impl Client {
    /// Sends one request; with `flush == false` it is only queued (see [`Client::flush`]).
    async fn send(&mut self, shared: &Shared, size: usize, flush: bool) -> Result<(), ConnError> {
        let id = self.next_id;
        self.next_id += 1;
        let body = proto::payload(0, 0, client::now_us(), size);
        self.pending.push_back((id, Instant::now()));
        Counters::bump(&shared.sent);
        let frame = Message::text(proto::event(Some(id), &format!("[\"echo-ack\",{body}]")));
        if flush {
            self.ws.send(frame).await?;
        } else {
            self.ws.feed(frame).await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), ConnError> {
        self.ws.flush().await.map_err(ConnError::Ws)
    }

    /// Handles one frame; returns whether it was an ack of ours.
    async fn on_frame(
        &mut self,
        text: &str,
        plan: &Plan,
        shared: &Shared,
        counters: &Counters,
    ) -> Result<bool, ConnError> {
        match proto::classify(text) {
            Inbound::Ack { id, .. } => {
                let now = Instant::now();
                let Some(pos) = self.pending.iter().position(|(p, _)| *p == id) else {
                    Counters::bump(&shared.stray_acks);
                    return Ok(false);
                };
                let (_, sent_at) = self.pending.remove(pos).unwrap_or((id, now));
                Counters::bump(&shared.acked);
                if sent_at >= plan.warm_end && now <= plan.end {
                    Counters::bump(&shared.acked_in_window);
                    let us = u64::try_from((now - sent_at).as_micros()).unwrap_or(u64::MAX);
                    stats::record(&mut shared.rtt.borrow_mut(), us);
                }
                Ok(true)
            }
            Inbound::Ping => {
                client::answer_ping(&mut self.ws, counters).await?;
                Ok(false)
            }
            Inbound::Close | Inbound::Disconnect => Err(ConnError::Closed),
            Inbound::Other => {
                Counters::bump(&counters.malformed);
                Ok(false)
            }
            _ => {
                Counters::bump(&counters.other_events);
                Ok(false)
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn echo_client(
    ep: Rc<Endpoint>,
    i: usize,
    setup: Rc<Setup>,
    counters: Rc<Counters>,
    shared: Rc<Shared>,
    mut go: watch::Receiver<Option<Plan>>,
    args: Rc<EchoArgs>,
) {
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
    let mut c = Client {
        ws,
        next_id: 1,
        pending: VecDeque::new(),
    };
    // Wait for the start, answering pings.
    let plan = loop {
        if let Some(plan) = *go.borrow() {
            break plan;
        }
        tokio::select! {
            changed = go.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            frame = client::next_text(&mut c.ws) => {
                let idle_plan = Plan { start: Instant::now(), warm_end: Instant::now(), end: Instant::now() };
                let result = match frame {
                    Ok(text) => c.on_frame(&text, &idle_plan, &shared, &counters).await.map(|_| ()),
                    Err(e) => Err(e),
                };
                if let Err(e) = result {
                    counters.drop_session(&e);
                    return;
                }
            }
        }
    };
    let result = if args.closed_loop {
        closed_loop(&mut c, &plan, &shared, &counters, &args).await
    } else {
        open_loop(&mut c, i, &plan, &shared, &counters, &args).await
    };
    if let Err(e) = result {
        counters.drop_session(&e);
    }
}

async fn open_loop(
    c: &mut Client,
    i: usize,
    plan: &Plan,
    shared: &Shared,
    counters: &Counters,
    args: &EchoArgs,
) -> Result<(), ConnError> {
    let period = Duration::from_secs_f64(1.0 / args.rate);
    // Spread the clients evenly over one period.
    let offset = period.mul_f64(i as f64 / args.clients.max(1) as f64);
    let mut next = plan.start + offset;
    let stop = plan.end + GRACE;
    loop {
        let now = Instant::now();
        if now >= stop || (now >= plan.end && c.pending.is_empty()) {
            return Ok(());
        }
        let wake = if next < plan.end { next } else { stop };
        tokio::select! {
            frame = client::next_text(&mut c.ws) => {
                c.on_frame(&frame?, plan, shared, counters).await?;
            }
            _ = tokio::time::sleep_until(wake.into()) => {
                if next < plan.end && Instant::now() >= next {
                    c.send(shared, args.size, true).await?;
                    next += period;
                }
            }
        }
    }
}

async fn closed_loop(
    c: &mut Client,
    plan: &Plan,
    shared: &Shared,
    counters: &Counters,
    args: &EchoArgs,
) -> Result<(), ConnError> {
    for _ in 0..args.window.max(1) {
        c.send(shared, args.size, false).await?;
    }
    c.flush().await?;
    let stop = plan.end + GRACE;
    loop {
        let now = Instant::now();
        if now >= stop || (now >= plan.end && c.pending.is_empty()) {
            return Ok(());
        }
        let frame = match tokio::time::timeout_at(stop.into(), client::next_text(&mut c.ws)).await {
            Ok(frame) => frame?,
            Err(_) => return Ok(()),
        };
        let mut frame = frame;
        // Answer every ack already received with one write, not one write per ack: the
        // generator has one core and must not be the bottleneck.
        loop {
            if c.on_frame(&frame, plan, shared, counters).await? && Instant::now() < plan.end {
                c.send(shared, args.size, false).await?;
            }
            match client::next_text(&mut c.ws).now_or_never() {
                Some(next) => frame = next?,
                None => break,
            }
        }
        c.flush().await?;
    }
}

/// Runs the scenario and returns its JSON result.
pub async fn run(ep: Rc<Endpoint>, setup: Rc<Setup>, args: EchoArgs) -> Value {
    let args = Rc::new(args);
    let counters = Rc::new(Counters::default());
    let shared = Rc::new(Shared {
        rtt: RefCell::new(stats::latency_histogram()),
        sent: Cell::new(0),
        acked: Cell::new(0),
        acked_in_window: Cell::new(0),
        stray_acks: Cell::new(0),
    });
    let (go_tx, go_rx) = watch::channel(None);
    let t0 = Instant::now();
    for i in 0..args.clients {
        tokio::task::spawn_local(echo_client(
            ep.clone(),
            i,
            setup.clone(),
            counters.clone(),
            shared.clone(),
            go_rx.clone(),
            args.clone(),
        ));
    }
    let total = args.clients as u64;
    client::wait_until(t0 + setup.setup_timeout, || counters.settled() >= total).await;
    let setup_s = stats::round1(t0.elapsed().as_secs_f64());

    let start = Instant::now() + Duration::from_millis(200);
    let warm_end = start + Duration::from_secs_f64(args.warmup);
    let end = warm_end + Duration::from_secs_f64(args.secs);
    let plan = Plan {
        start,
        warm_end,
        end,
    };
    let _ = go_tx.send(Some(plan));
    tokio::time::sleep_until(warm_end.into()).await;
    let cpu = CpuWindow::start(&setup.pids);
    tokio::time::sleep_until(end.into()).await;
    let window = cpu.finish();
    // Let the clients collect their last acks.
    let sent_at_end = shared.sent.get();
    client::wait_until(end + GRACE + Duration::from_millis(100), || {
        shared.acked.get() + shared.stray_acks.get() >= sent_at_end
    })
    .await;

    let rtt = shared.rtt.borrow();
    let ready = counters.ready.get();
    let dropped = counters.dropped.get();
    json!({
        "scenario": "echo",
        "mode": if args.closed_loop { "closed-loop" } else { "open-loop" },
        "ok": ready == total && dropped == 0 && !rtt.is_empty(),
        "clients": args.clients,
        "rate_per_client": if args.closed_loop { Value::Null } else { json!(args.rate) },
        "window": if args.closed_loop { json!(args.window) } else { Value::Null },
        "size": args.size,
        "measure_s": args.secs,
        "setup_s": setup_s,
        "sent": shared.sent.get(),
        "acked": shared.acked.get(),
        "unacked": shared.sent.get().saturating_sub(shared.acked.get()),
        "stray_acks": shared.stray_acks.get(),
        "acked_per_s": stats::round1(shared.acked_in_window.get() as f64 / args.secs.max(1e-3)),
        "rtt": stats::summary(&rtt),
        "cpu": window,
        "counters": counters.to_json(),
    })
}
