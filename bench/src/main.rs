//! `ferrio-bench`: a load generator speaking raw Engine.IO v4 / Socket.IO v5 over WebSocket,
//! to measure ferrio and its peers (Node socket.io, socketioxide) the same way.
//!
//! Each subcommand is one scenario, bounded in time, and prints one JSON line on stdout.
//! Everything runs on one thread (the generator is pinned to its own core by `scripts/bench`);
//! its own CPU use is reported with every measurement window so that a saturated generator is
//! flagged (`gen_saturated`), not mistaken for a slow server.
//!
//! ```text
//! ferrio-bench idle    --port P --conns 10000 --secs 30 --pid SERVER_PID
//! ferrio-bench fanout  --port P --subs 1000 --rate 50,100,200 --secs 5 --size 100
//! ferrio-bench echo    --port P --clients 1000 --rate 1 --secs 10
//! ferrio-bench echo    --port P --closed-loop --clients 100 --window 4 --secs 10
//! ferrio-bench cluster --port A --port-b B --subs 1000 --rate 20 --secs 10
//! ```

mod client;
mod cluster;
mod echo;
mod fanout;
mod idle;
mod proto;
mod stats;

use std::rc::Rc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde_json::Value;
use tokio::sync::Semaphore;

use crate::client::Endpoint;

#[derive(Parser)]
#[command(
    name = "ferrio-bench",
    version,
    about = "Socket.IO load generator for ferrio and its peers"
)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Args, Clone)]
struct Common {
    /// Server IP address.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Server port.
    #[arg(long, default_value_t = 3000)]
    port: u16,
    /// Engine.IO path.
    #[arg(long, default_value = "/socket.io/")]
    path: String,
    /// Source addresses 127.0.0.2… to spread connections over; 0 = one per 20k connections.
    #[arg(long, default_value_t = 0)]
    sources: usize,
    /// Server process to measure (RSS, CPU); repeat for several.
    #[arg(long = "pid")]
    pids: Vec<u32>,
    /// Connection handshakes in flight at once.
    #[arg(long, default_value_t = 256)]
    connect_concurrency: usize,
    /// Seconds one connection (and its join) may take.
    #[arg(long, default_value_t = 15.0)]
    connect_timeout: f64,
    /// Seconds the whole setup phase (all connections) may take.
    #[arg(long, default_value_t = 180.0)]
    setup_timeout: f64,
    /// tungstenite read buffer per connection, bytes.
    #[arg(long, default_value_t = 4096)]
    read_buf: usize,
    /// Free text copied into the result (e.g. the server's name).
    #[arg(long)]
    label: Option<String>,
}

#[derive(Subcommand)]
enum Scenario {
    /// Hold N connections for S seconds; server RSS per connection and idle CPU.
    Idle {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 1000)]
        conns: usize,
        #[arg(long, default_value_t = 30.0)]
        secs: f64,
        /// Seconds to wait after the last connection before sampling RSS.
        #[arg(long, default_value_t = 3.0)]
        settle: f64,
        /// Send SIGUSR2 to the server pids before each RSS sample (Node peer: full GC).
        #[arg(long)]
        gc_signal: bool,
    },
    /// N subscribers in one room; a publisher at increasing rates; the knee.
    Fanout {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 1000)]
        subs: usize,
        /// Messages per second, one step per value: 100,200,400.
        #[arg(long, value_delimiter = ',', default_value = "100")]
        rate: Vec<f64>,
        /// Seconds per step.
        #[arg(long, default_value_t = 5.0)]
        secs: f64,
        /// Message payload size, bytes.
        #[arg(long, default_value_t = 100)]
        size: usize,
        #[arg(long, default_value = "bench")]
        room: String,
        /// Longest wait for late deliveries after each step, seconds.
        #[arg(long, default_value_t = 3.0)]
        drain: f64,
        /// A step passes (the knee) only with p99 under this, ms.
        #[arg(long, default_value_t = 100.0)]
        max_p99_ms: f64,
        /// A step is sustained only with p99 under this, ms; the ramp stops at the first that is not.
        #[arg(long, default_value_t = 500.0)]
        sustain_p99_ms: f64,
        /// Run all steps even after one fails.
        #[arg(long)]
        all_steps: bool,
        /// After the first failing step, try once between it and the last passing one.
        #[arg(long)]
        refine: bool,
    },
    /// Clients emitting `echo-ack` with an ack: round trip, or closed-loop throughput.
    Echo {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 1000)]
        clients: usize,
        /// Emits per second per client (open loop).
        #[arg(long, default_value_t = 1.0)]
        rate: f64,
        /// Measured seconds.
        #[arg(long, default_value_t = 10.0)]
        secs: f64,
        /// Unmeasured seconds before.
        #[arg(long, default_value_t = 1.0)]
        warmup: f64,
        #[arg(long, default_value_t = 100)]
        size: usize,
        /// Each client keeps --window requests in flight, as fast as acks come back.
        #[arg(long)]
        closed_loop: bool,
        #[arg(long, default_value_t = 4)]
        window: usize,
    },
    /// Subscribers on node B; publishers on A and on B at once; the latency a Redis hop adds.
    Cluster {
        #[command(flatten)]
        common: Common,
        /// Port of node B (the subscribers' node); --port is node A.
        #[arg(long)]
        port_b: u16,
        #[arg(long, default_value_t = 1000)]
        subs: usize,
        /// Messages per second from each publisher.
        #[arg(long, default_value_t = 20.0)]
        rate: f64,
        #[arg(long, default_value_t = 10.0)]
        secs: f64,
        #[arg(long, default_value_t = 100)]
        size: usize,
        #[arg(long, default_value = "bench")]
        room: String,
        #[arg(long, default_value_t = 3.0)]
        drain: f64,
    },
}

/// What every connection task of a run shares: limits and the servers to measure.
pub struct Setup {
    /// Limits handshakes in flight.
    pub gate: Semaphore,
    pub connect_timeout: Duration,
    pub setup_timeout: Duration,
    pub pids: Vec<u32>,
}

fn seconds(s: f64, name: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(s)
        .map_err(|_| format!("--{name} must be a non-negative number of seconds"))
}

fn prepare(common: &Common, conns: usize) -> Result<(Rc<Endpoint>, Rc<Setup>), String> {
    let ep = Endpoint::new(
        &common.host,
        common.port,
        &common.path,
        common.sources,
        conns,
        common.read_buf,
    )?;
    let setup = Setup {
        gate: Semaphore::new(common.connect_concurrency.max(1)),
        connect_timeout: seconds(common.connect_timeout, "connect-timeout")?,
        setup_timeout: seconds(common.setup_timeout, "setup-timeout")?,
        pids: common.pids.clone(),
    };
    Ok((Rc::new(ep), Rc::new(setup)))
}

fn positive(x: f64, name: &str) -> Result<f64, String> {
    if x.is_finite() && x > 0.0 {
        Ok(x)
    } else {
        Err(format!("--{name} must be a positive number"))
    }
}

async fn run(scenario: Scenario) -> Result<(Value, Common), String> {
    match scenario {
        Scenario::Idle {
            common,
            conns,
            secs,
            settle,
            gc_signal,
        } => {
            let (ep, setup) = prepare(&common, conns)?;
            let args = idle::IdleArgs {
                conns,
                secs: positive(secs, "secs")?,
                settle_secs: settle.max(0.0),
                gc_signal,
            };
            Ok((idle::run(ep, setup, args).await, common))
        }
        Scenario::Fanout {
            common,
            subs,
            rate,
            secs,
            size,
            room,
            drain,
            max_p99_ms,
            sustain_p99_ms,
            all_steps,
            refine,
        } => {
            let (ep, setup) = prepare(&common, subs + 1)?;
            let rates = rate
                .into_iter()
                .map(|r| positive(r, "rate"))
                .collect::<Result<Vec<_>, _>>()?;
            let args = fanout::FanoutArgs {
                subs,
                rates,
                secs: positive(secs, "secs")?,
                size,
                room,
                drain_secs: drain.max(0.0),
                max_p99_ms,
                sustain_p99_ms,
                all_steps,
                refine,
            };
            Ok((fanout::run(ep, setup, args).await, common))
        }
        Scenario::Echo {
            common,
            clients,
            rate,
            secs,
            warmup,
            size,
            closed_loop,
            window,
        } => {
            let (ep, setup) = prepare(&common, clients)?;
            let args = echo::EchoArgs {
                clients,
                rate: positive(rate, "rate")?,
                secs: positive(secs, "secs")?,
                warmup: warmup.max(0.0),
                size,
                closed_loop,
                window,
            };
            Ok((echo::run(ep, setup, args).await, common))
        }
        Scenario::Cluster {
            common,
            port_b,
            subs,
            rate,
            secs,
            size,
            room,
            drain,
        } => {
            let (node_a, setup) = prepare(&common, subs + 2)?;
            let node_b = Endpoint::new(
                &common.host,
                port_b,
                &common.path,
                common.sources,
                subs + 2,
                common.read_buf,
            )?;
            let args = cluster::ClusterArgs {
                subs,
                rate: positive(rate, "rate")?,
                secs: positive(secs, "secs")?,
                size,
                room,
                drain_secs: drain.max(0.0),
            };
            Ok((
                cluster::run(node_a, Rc::new(node_b), setup, args).await,
                common,
            ))
        }
    }
}

fn main() -> std::process::ExitCode {
    client::start_clock();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ferrio-bench: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let local = tokio::task::LocalSet::new();
    let outcome = local.block_on(&runtime, run(cli.scenario));
    match outcome {
        Ok((mut result, common)) => {
            result["target"] = Value::String(format!("{}:{}", common.host, common.port));
            if let Some(label) = common.label {
                result["label"] = Value::String(label);
            }
            println!("{result}");
            if result["ok"] == Value::Bool(true) {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::from(2)
            }
        }
        Err(message) => {
            eprintln!("ferrio-bench: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}
