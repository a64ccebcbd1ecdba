//! `fanout`: N subscribers in one room, a publisher emitting `to-room` at increasing rates.
//!
//! ```text
//! subscriber ×N: 421["join-room","bench"]  ◀── 431[{"ok":true,…}]
//! publisher:     42k["to-room","bench","msg",{"s":step,"n":tag,"t":µs,"p":"xx…"}]
//! server ──▶ every subscriber: 42["msg",{…}]   latency = now − t
//! ```
//!
//! Each rate is one step of `secs` seconds followed by a drain. A step is *sustained* when every
//! message reached every subscriber, the publisher kept its rate and p99 stayed under
//! `--sustain-p99-ms` (500); it *passes* when, moreover, p99 < `--max-p99-ms` (100). The knee
//! is the last passing step, `sustained` the last sustained one: where no rate keeps p99 under
//! 100 ms (a broadcast to 10k sockets can take longer than that by itself), the throughput
//! comparison still has a figure. The ramp stops at the first step not sustained.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use tokio::time::MissedTickBehavior;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{self, ConnError, Counters, Endpoint, Ws};
use crate::proto::{self, Inbound};
use crate::stats::{self, CpuWindow};
use crate::Setup;

/// Deliveries and latencies of one step (or one publisher), filled by the subscribers.
pub struct StepStats {
    pub delivered: u64,
    pub latency: Histogram<u64>,
}

/// Per-step statistics indexed by the payload's `s` field.
pub type Steps = Rc<RefCell<Vec<StepStats>>>;

pub fn new_steps(n: usize) -> Steps {
    Rc::new(RefCell::new(
        (0..n)
            .map(|_| StepStats {
                delivered: 0,
                latency: stats::latency_histogram(),
            })
            .collect(),
    ))
}

fn delivered(steps: &Steps, k: usize) -> u64 {
    steps.borrow().get(k).map_or(0, |s| s.delivered)
}

/// JSON string literal of a room name.
fn quoted(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

/// One subscriber: connect, join `room` (acked), then record every `msg` until the end.
pub async fn subscriber(
    ep: Rc<Endpoint>,
    i: usize,
    setup: Rc<Setup>,
    counters: Rc<Counters>,
    steps: Steps,
    room: Rc<str>,
) {
    let permit = setup.gate.acquire().await;
    let mut ws = match client::connect(&ep, i, setup.connect_timeout).await {
        Ok(ws) => ws,
        Err(e) => {
            counters.fail("connect", &e);
            return;
        }
    };
    Counters::bump(&counters.connected);
    let join = format!("[\"join-room\",{}]", quoted(&room));
    match client::emit_and_wait_ack(&mut ws, 1, &join, setup.connect_timeout).await {
        Ok(body) if body.contains("\"ok\":true") => {}
        Ok(body) => {
            counters.fail(
                "join",
                &ConnError::Protocol(format!("join refused: {body:.80}")),
            );
            return;
        }
        Err(e) => {
            counters.fail("join", &e);
            return;
        }
    }
    drop(permit);
    Counters::bump(&counters.ready);
    if let Err(e) = receive(&mut ws, &counters, &steps).await {
        counters.drop_session(&e);
    }
}

async fn receive(ws: &mut Ws, counters: &Counters, steps: &Steps) -> Result<(), ConnError> {
    loop {
        let text = client::next_text(ws).await?;
        match proto::classify(&text) {
            Inbound::Event { body, .. } if body.starts_with("[\"msg\"") => {
                let now = client::now_us();
                match (proto::num_field(body, "s"), proto::num_field(body, "t")) {
                    (Some(s), Some(t)) => {
                        let mut steps = steps.borrow_mut();
                        match usize::try_from(s).ok().and_then(|s| steps.get_mut(s)) {
                            Some(step) => {
                                step.delivered += 1;
                                stats::record(&mut step.latency, now.saturating_sub(t));
                            }
                            None => Counters::bump(&counters.malformed),
                        }
                    }
                    _ => Counters::bump(&counters.malformed),
                }
            }
            Inbound::Ping => client::answer_ping(ws, counters).await?,
            Inbound::Close | Inbound::Disconnect => return Err(ConnError::Closed),
            Inbound::Other => Counters::bump(&counters.malformed),
            // Presence notices (`join-room` {room,id}) and anything else the hub sends.
            _ => Counters::bump(&counters.other_events),
        }
    }
}

/// What a publisher did during one step.
pub struct Published {
    pub sent: u64,
    pub acked: u64,
    pub secs: f64,
    pub error: Option<String>,
}

/// A connected publisher: its socket and its next ack id.
pub struct Publisher {
    pub ws: Ws,
    next_ack: u64,
    pub acked: u64,
    /// Ids and send times of `to-room` requests not acked yet.
    pending: VecDeque<(u64, Instant)>,
    /// Time from emitting `to-room` to its ack: how long the server takes to accept (and, for
    /// servers that broadcast before acking, to write out) one broadcast.
    pub ack_latency: Histogram<u64>,
}

impl Publisher {
    pub fn new(ws: Ws) -> Self {
        Publisher {
            ws,
            next_ack: 1,
            acked: 0,
            pending: VecDeque::new(),
            ack_latency: stats::latency_histogram(),
        }
    }

    /// Emits `to-room` `room` `msg` {payload tagged `step`, `tag`} at `rate` per second for
    /// `secs`, reading acks and answering pings in between.
    pub async fn publish(
        &mut self,
        room: &str,
        step: usize,
        tag: u64,
        rate: f64,
        secs: f64,
        size: usize,
    ) -> Published {
        let acked_before = self.acked;
        let room = quoted(room);
        let start = Instant::now();
        let end = start + Duration::from_secs_f64(secs);
        let period = Duration::from_secs_f64((1.0 / rate).max(0.001));
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // Never more than a tenth of a second's worth in one burst.
        let burst = ((rate / 10.0).ceil() as u64).max(1);
        let mut sent = 0u64;
        let mut error = None;
        loop {
            tokio::select! {
                biased;
                frame = client::next_text(&mut self.ws) => {
                    if let Err(e) = self.on_frame(frame).await {
                        error = Some(e.to_string());
                        break;
                    }
                }
                _ = tick.tick() => {
                    let now = Instant::now();
                    if now >= end {
                        break;
                    }
                    let due = ((now - start).as_secs_f64() * rate) as u64 + 1;
                    let batch = due.saturating_sub(sent).min(burst);
                    if let Err(e) = self.send_batch(&room, step, tag, size, batch).await {
                        error = Some(e.to_string());
                        break;
                    }
                    sent += batch;
                }
            }
        }
        Published {
            sent,
            acked: self.acked - acked_before,
            secs: start.elapsed().as_secs_f64().min(secs).max(1e-3),
            error,
        }
    }

    async fn send_batch(
        &mut self,
        room: &str,
        step: usize,
        tag: u64,
        size: usize,
        count: u64,
    ) -> Result<(), ConnError> {
        for _ in 0..count {
            let body = proto::payload(step as u64, tag, client::now_us(), size);
            let frame = proto::event(
                Some(self.next_ack),
                &format!("[\"to-room\",{room},\"msg\",{body}]"),
            );
            self.pending.push_back((self.next_ack, Instant::now()));
            self.next_ack += 1;
            self.ws.feed(Message::text(frame)).await?;
        }
        self.ws.flush().await?;
        Ok(())
    }

    async fn on_frame(
        &mut self,
        frame: Result<tokio_tungstenite::tungstenite::Utf8Bytes, ConnError>,
    ) -> Result<(), ConnError> {
        let text = frame?;
        match proto::classify(&text) {
            Inbound::Ack { id, .. } => {
                self.acked += 1;
                // Acks come in order; anything older than this one was lost.
                while let Some((pending, at)) = self.pending.pop_front() {
                    if pending == id {
                        let us = u64::try_from(at.elapsed().as_micros()).unwrap_or(u64::MAX);
                        stats::record(&mut self.ack_latency, us);
                        break;
                    }
                }
            }
            Inbound::Ping => client::send_text(&mut self.ws, proto::PONG.to_string()).await?,
            Inbound::Close | Inbound::Disconnect => return Err(ConnError::Closed),
            _ => {}
        }
        Ok(())
    }

    /// Keeps reading (acks, pings) until `done()` or `deadline`.
    pub async fn pump_until(
        &mut self,
        deadline: Instant,
        mut done: impl FnMut() -> bool,
    ) -> Result<bool, ConnError> {
        loop {
            if done() {
                return Ok(true);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            let slice = (deadline - now).min(Duration::from_millis(10));
            if let Ok(frame) = tokio::time::timeout(slice, client::next_text(&mut self.ws)).await {
                self.on_frame(frame).await?;
            }
        }
    }
}

/// What `fanout` was asked to do.
pub struct FanoutArgs {
    pub subs: usize,
    pub rates: Vec<f64>,
    pub secs: f64,
    pub size: usize,
    pub room: String,
    /// Longest wait after a step for late deliveries.
    pub drain_secs: f64,
    /// The p99 a passing step must stay under (the knee).
    pub max_p99_ms: f64,
    /// The p99 a sustained step must stay under: the ramp goes on while steps are sustained.
    pub sustain_p99_ms: f64,
    /// Run every rate even after a failing one.
    pub all_steps: bool,
    /// After the first failing step, try once more halfway (geometrically) between the last
    /// passing rate and the failing one.
    pub refine: bool,
}

/// Waits for the traffic of the setup phase (e.g. presence notices of every join to every
/// member) to stop: no new frame for `quiet`, at most until `deadline`.
pub async fn settle(counters: &Counters, quiet: Duration, deadline: Instant) -> f64 {
    let start = Instant::now();
    let mut last = counters.other_events.get();
    let mut still_since = Instant::now();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = counters.other_events.get();
        if now != last {
            last = now;
            still_since = Instant::now();
        } else if still_since.elapsed() >= quiet {
            break;
        }
    }
    stats::round1(start.elapsed().as_secs_f64())
}

/// Runs the scenario and returns its JSON result.
pub async fn run(ep: Rc<Endpoint>, setup: Rc<Setup>, args: FanoutArgs) -> Value {
    let counters = Rc::new(Counters::default());
    // One extra slot for the refining step.
    let steps = new_steps(args.rates.len() + 1);
    let room: Rc<str> = Rc::from(args.room.as_str());
    let t0 = Instant::now();
    for i in 0..args.subs {
        tokio::task::spawn_local(subscriber(
            ep.clone(),
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
    let setup_s = stats::round1(t0.elapsed().as_secs_f64());
    let settle_s = settle(&counters, Duration::from_secs(1), deadline).await;
    let presence_events = counters.other_events.get();

    let mut publisher = match client::connect(&ep, args.subs, setup.connect_timeout).await {
        Ok(ws) => Publisher::new(ws),
        Err(e) => {
            return json!({
                "scenario": "fanout", "ok": false, "error": format!("publisher: {e}"),
                "counters": counters.to_json(),
            })
        }
    };

    let mut results = Vec::new();
    let mut knee: Option<Value> = None;
    let mut rates = args.rates.clone();
    let mut best_sustained: Option<Value> = None;
    // The last rate that was sustained: the low end of the refining step.
    let mut last_pass: Option<f64> = None;
    let mut k = 0;
    while k < rates.len() {
        let rate = rates[k];
        let members = counters.ready.get().saturating_sub(counters.dropped.get());
        let dropped_before = counters.dropped.get();
        let cpu = CpuWindow::start(&setup.pids);
        publisher.ack_latency.reset();
        let published = publisher
            .publish(&args.room, k, 0, rate, args.secs, args.size)
            .await;
        let window = cpu.finish();
        let expected = published.sent * members;
        let drain_deadline = Instant::now() + Duration::from_secs_f64(args.drain_secs);
        let drained = publisher
            .pump_until(drain_deadline, || delivered(&steps, k) >= expected)
            .await;
        let (got, p50, p99, latency) = {
            let steps = steps.borrow();
            let s = &steps[k];
            (
                s.delivered,
                stats::quantile_ms(&s.latency, 0.50),
                stats::quantile_ms(&s.latency, 0.99),
                stats::summary(&s.latency),
            )
        };
        let actual_rate = published.sent as f64 / published.secs;
        let deliveries_per_s = got as f64 / published.secs;
        let delivered_all = published.error.is_none()
            && drained.is_ok()
            && expected > 0
            && got >= expected
            && counters.dropped.get() == dropped_before
            && actual_rate >= 0.95 * rate;
        let pass = delivered_all && p99.is_some_and(|p| p < args.max_p99_ms);
        let sustained = delivered_all && p99.is_some_and(|p| p < args.sustain_p99_ms);
        let step = json!({
            "rate": rate,
            "actual_rate": stats::round1(actual_rate),
            "subscribers": members,
            "sent": published.sent,
            "acked": published.acked,
            "expected": expected,
            "delivered": got,
            "delivered_ratio": if expected > 0 { got as f64 / expected as f64 } else { 0.0 },
            "deliveries_per_s": stats::round1(deliveries_per_s),
            "latency": latency,
            "publisher_ack": stats::summary(&publisher.ack_latency),
            "cpu": window,
            "pass": pass,
            "sustained": sustained,
            "publisher_error": published.error,
        });
        let summary = json!({
            "rate": rate,
            "deliveries_per_s": stats::round1(deliveries_per_s),
            "p50_ms": p50,
            "p99_ms": p99,
            "gen_saturated": step["cpu"]["gen_saturated"],
        });
        if pass {
            knee = Some(summary.clone());
        }
        if sustained {
            last_pass = Some(rate);
            best_sustained = Some(summary);
        }
        results.push(step);
        let refining = k >= args.rates.len();
        k += 1;
        if drained.is_err() || (!sustained && !args.all_steps) {
            let backlog_cleared = drained.as_ref().is_ok_and(|all| *all);
            match last_pass {
                Some(low) if args.refine && !refining && backlog_cleared => {
                    rates.push(((low * rate).sqrt() * 10.0).round() / 10.0);
                    k = args.rates.len();
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                _ => break,
            }
        }
    }
    json!({
        "scenario": "fanout",
        "ok": best_sustained.is_some(),
        "subs": args.subs,
        "size": args.size,
        "step_s": args.secs,
        "setup_s": setup_s,
        "settle_s": settle_s,
        "presence_events": presence_events,
        "max_p99_ms": args.max_p99_ms,
        "knee": knee,
        "sustain_p99_ms": args.sustain_p99_ms,
        "sustained": best_sustained,
        "steps": results,
        "counters": counters.to_json(),
    })
}
