//! Opening Socket.IO sessions: TCP from a chosen loopback source address, the WebSocket
//! upgrade, Engine.IO open, Socket.IO CONNECT; and the counters every connection task updates.
//!
//! ```text
//! generator                                  server
//!   TCP connect from 127.0.0.k ───────────────▶
//!   GET /socket.io/?EIO=4&transport=websocket ─▶  101
//!   ◀──────────────────────────────────────────── 0{"sid":…,"pingInterval":…}
//!   40 ────────────────────────────────────────▶
//!   ◀──────────────────────────────────────────── 40{"sid":…}
//!   … events; every 2 (ping) is answered with 3 (pong)
//! ```
//!
//! Everything runs on one current-thread runtime, so the shared state is `Rc` + `Cell`.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use crate::proto::{self, Inbound};

/// A WebSocket to the server.
pub type Ws = WebSocketStream<TcpStream>;

/// How many connections one source address carries at most when `--sources 0` (auto).
/// The ephemeral range has about 28k ports, but `bind(port 0)` gets the even half first and
/// slows down sharply once those run short (10k-plus connections from one address took
/// seconds per thousand), so stay well below.
const CONNS_PER_SOURCE: usize = 5_000;

static START: OnceLock<Instant> = OnceLock::new();

/// Starts the generator's clock (idempotent).
pub fn start_clock() {
    START.get_or_init(Instant::now);
}

/// Microseconds since the generator started; the `t` field of benchmark payloads.
pub fn now_us() -> u64 {
    let start = *START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// Where to connect, and from which source addresses.
pub struct Endpoint {
    /// Server address (an IP: this is a loopback benchmark).
    pub addr: SocketAddr,
    /// Engine.IO path, e.g. `/socket.io/`.
    pub path: String,
    /// Source addresses used round-robin; empty lets the kernel choose.
    pub sources: Vec<Ipv4Addr>,
    /// tungstenite's read buffer per connection: small, since idle connections are many.
    pub read_buf: usize,
}

impl Endpoint {
    /// `sources == 0` picks one source address per [`CONNS_PER_SOURCE`] connections of `conns`.
    pub fn new(
        host: &str,
        port: u16,
        path: &str,
        sources: usize,
        conns: usize,
        read_buf: usize,
    ) -> Result<Self, String> {
        let ip: IpAddr = host
            .parse()
            .map_err(|_| format!("--host must be an IP address, got {host:?}"))?;
        let count = if sources == 0 {
            conns.div_ceil(CONNS_PER_SOURCE).max(1)
        } else {
            sources
        };
        if count > 250 {
            return Err(format!("at most 250 source addresses, asked for {count}"));
        }
        // 127.0.0.2 … 127.0.0.(count+1); only meaningful towards a loopback server.
        let sources = if ip.is_loopback() && ip.is_ipv4() {
            (0..count)
                .map(|k| Ipv4Addr::new(127, 0, 0, 2 + k as u8))
                .collect()
        } else {
            Vec::new()
        };
        let path = if path.ends_with('/') {
            path.to_string()
        } else {
            format!("{path}/")
        };
        Ok(Endpoint {
            addr: SocketAddr::new(ip, port),
            path,
            sources,
            read_buf: read_buf.max(256),
        })
    }

    fn source(&self, i: usize) -> Option<Ipv4Addr> {
        if self.sources.is_empty() {
            None
        } else {
            Some(self.sources[i % self.sources.len()])
        }
    }

    fn url(&self) -> String {
        format!("ws://{}{}?EIO=4&transport=websocket", self.addr, self.path)
    }
}

/// Why a connection failed or ended.
#[derive(Debug)]
pub enum ConnError {
    Io(std::io::Error),
    Ws(tungstenite::Error),
    Timeout,
    Closed,
    Protocol(String),
}

impl fmt::Display for ConnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnError::Io(e) => write!(f, "io: {e}"),
            ConnError::Ws(e) => write!(f, "websocket: {e}"),
            ConnError::Timeout => write!(f, "timeout"),
            ConnError::Closed => write!(f, "closed by server"),
            ConnError::Protocol(m) => write!(f, "protocol: {m}"),
        }
    }
}

impl From<std::io::Error> for ConnError {
    fn from(e: std::io::Error) -> Self {
        ConnError::Io(e)
    }
}

impl From<tungstenite::Error> for ConnError {
    fn from(e: tungstenite::Error) -> Self {
        ConnError::Ws(e)
    }
}

/// Opens a TCP connection from source `i`, upgrades it, and connects to the default namespace,
/// all within `timeout`.
pub async fn connect(ep: &Endpoint, i: usize, timeout: Duration) -> Result<Ws, ConnError> {
    tokio::time::timeout(timeout, connect_inner(ep, i))
        .await
        .map_err(|_| ConnError::Timeout)?
}

async fn connect_inner(ep: &Endpoint, i: usize) -> Result<Ws, ConnError> {
    let socket = TcpSocket::new_v4()?;
    // Close with RST, not FIN: tens of thousands of sockets in TIME_WAIT would keep their
    // source ports from the next run.
    socket.set_zero_linger()?;
    if let Some(src) = ep.source(i) {
        socket.bind(SocketAddr::new(IpAddr::V4(src), 0))?;
    }
    let stream = socket.connect(ep.addr).await?;
    stream.set_nodelay(true)?;
    let config = WebSocketConfig::default()
        .read_buffer_size(ep.read_buf)
        // Frames are written on flush; every send path flushes, batches only where they say so.
        .write_buffer_size(64 << 10)
        .max_message_size(Some(4 << 20))
        .max_frame_size(Some(4 << 20));
    let (mut ws, _response) =
        tokio_tungstenite::client_async_with_config(ep.url(), stream, Some(config)).await?;

    let open = next_text(&mut ws).await?;
    match proto::classify(&open) {
        Inbound::Open(json) => {
            let handshake: Value = serde_json::from_str(json)
                .map_err(|e| ConnError::Protocol(format!("bad open packet: {e}")))?;
            if !handshake.get("sid").is_some_and(Value::is_string) {
                return Err(ConnError::Protocol("open packet without sid".into()));
            }
        }
        _ => {
            return Err(ConnError::Protocol(format!(
                "expected open, got {:.40}",
                open.as_str()
            )))
        }
    }
    ws.send(Message::text(proto::CONNECT)).await?;
    loop {
        let text = next_text(&mut ws).await?;
        match proto::classify(&text) {
            Inbound::Connect(_) => return Ok(ws),
            Inbound::Ping => ws.send(Message::text(proto::PONG)).await?,
            Inbound::ConnectError(json) => {
                return Err(ConnError::Protocol(format!("connect error {json:.80}")))
            }
            Inbound::Close | Inbound::Disconnect => return Err(ConnError::Closed),
            _ => {}
        }
    }
}

/// The next text frame. WebSocket-level pings are answered by tungstenite itself.
pub async fn next_text(ws: &mut Ws) -> Result<Utf8Bytes, ConnError> {
    loop {
        match ws.next().await {
            None | Some(Ok(Message::Close(_))) => return Err(ConnError::Closed),
            Some(Err(e)) => return Err(ConnError::Ws(e)),
            Some(Ok(Message::Text(t))) => return Ok(t),
            Some(Ok(_)) => {}
        }
    }
}

/// Sends one text frame.
pub async fn send_text(ws: &mut Ws, text: String) -> Result<(), ConnError> {
    ws.send(Message::text(text)).await.map_err(ConnError::Ws)
}

/// Emits `["event",…args]` with ack id `id` and waits for that ack, answering pings meanwhile.
/// Returns the ack's JSON arguments.
pub async fn emit_and_wait_ack(
    ws: &mut Ws,
    id: u64,
    args: &str,
    timeout: Duration,
) -> Result<String, ConnError> {
    send_text(ws, proto::event(Some(id), args)).await?;
    let wait = async {
        loop {
            let text = next_text(ws).await?;
            match proto::classify(&text) {
                Inbound::Ack { id: got, body } if got == id => return Ok(body.to_string()),
                Inbound::Ping => send_text(ws, proto::PONG.to_string()).await?,
                Inbound::Close | Inbound::Disconnect => return Err(ConnError::Closed),
                _ => {}
            }
        }
    };
    tokio::time::timeout(timeout, wait)
        .await
        .map_err(|_| ConnError::Timeout)?
}

/// Counters shared by all connection tasks of a run.
#[derive(Default)]
pub struct Counters {
    /// Sessions that completed the Socket.IO CONNECT.
    pub connected: Cell<u64>,
    /// Sessions that never connected (or failed their setup, e.g. the join).
    pub failed: Cell<u64>,
    /// Sessions fully set up (connected and, where the scenario wants it, joined).
    pub ready: Cell<u64>,
    /// Sessions that ended while the run still needed them.
    pub dropped: Cell<u64>,
    /// Engine.IO pings answered.
    pub pings: Cell<u64>,
    /// Frames the scenario did not expect (e.g. presence events), by kind below.
    pub other_events: Cell<u64>,
    /// Frames that could not be understood.
    pub malformed: Cell<u64>,
    /// The first few distinct error messages, for diagnosis.
    samples: RefCell<Vec<String>>,
}

impl Counters {
    /// Adds one to a counter.
    pub fn bump(c: &Cell<u64>) {
        c.set(c.get() + 1);
    }

    /// Records an error message sample (at most 5 distinct ones are kept).
    pub fn note(&self, what: &str, e: &ConnError) {
        let mut samples = self.samples.borrow_mut();
        let msg = format!("{what}: {e}");
        if samples.len() < 5 && !samples.contains(&msg) {
            samples.push(msg);
        }
    }

    /// Setup failure: counted and sampled.
    pub fn fail(&self, what: &str, e: &ConnError) {
        Self::bump(&self.failed);
        self.note(what, e);
    }

    /// A session that ended while still needed.
    pub fn drop_session(&self, e: &ConnError) {
        Self::bump(&self.dropped);
        self.note("dropped", e);
    }

    /// Connections whose setup has finished, one way or the other.
    pub fn settled(&self) -> u64 {
        self.ready.get() + self.failed.get()
    }

    pub fn to_json(&self) -> Value {
        json!({
            "connected": self.connected.get(),
            "ready": self.ready.get(),
            "failed": self.failed.get(),
            "dropped": self.dropped.get(),
            "pings": self.pings.get(),
            "other_events": self.other_events.get(),
            "malformed": self.malformed.get(),
            "error_samples": *self.samples.borrow(),
        })
    }
}

/// Answers an Engine.IO ping with a pong, counting it.
pub async fn answer_ping(ws: &mut Ws, counters: &Counters) -> Result<(), ConnError> {
    Counters::bump(&counters.pings);
    send_text(ws, proto::PONG.to_string()).await
}

/// Waits until `done()` holds or `deadline` passes, checking every 20 ms. Returns whether
/// `done()` held.
pub async fn wait_until(deadline: Instant, mut done: impl FnMut() -> bool) -> bool {
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Holds a session open until the server ends it, answering pings.
pub async fn hold(mut ws: Ws, counters: &Counters) {
    loop {
        let result = match next_text(&mut ws).await {
            Ok(text) => match proto::classify(&text) {
                Inbound::Ping => answer_ping(&mut ws, counters).await,
                Inbound::Close | Inbound::Disconnect => Err(ConnError::Closed),
                Inbound::Other => {
                    Counters::bump(&counters.malformed);
                    Ok(())
                }
                _ => {
                    Counters::bump(&counters.other_events);
                    Ok(())
                }
            },
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            counters.drop_session(&e);
            return;
        }
    }
}
