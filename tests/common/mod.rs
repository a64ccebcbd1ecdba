//! Shared helpers of the tier-2 tests: a real server on 127.0.0.1 port 0, raw Engine.IO clients
//! over HTTP long-polling and WebSocket (awc), a small Socket.IO packet reader, and `Kit`, the
//! test application written only against ferrio's public API.
//!
//! Every wait is bounded: a helper that waits for the server panics after [`WAIT`] (or the
//! duration it is given) instead of hanging the test run.

#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::{Method, StatusCode};
use awc::http::header::HeaderMap;
use awc::ws::{self, CloseReason};
use bytes::Bytes;
use bytestring::ByteString;
use ferrio::config::Config;
use ferrio::hub::Hub;
use ferrio::server::{
    Event, Handler, Namespace, Room, RoomEvent, Server, ServerHandle, Shared, Socket, Target,
};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};

/// Longest a test waits for something the server should do "now".
pub const WAIT: Duration = Duration::from_secs(3);

/// Runs `fut`, panicking with `what` if it takes longer than `limit`.
pub async fn within<F: Future>(limit: Duration, what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(limit, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {limit:?} waiting for {what}"),
    }
}

/// Polls `cond` every 10 ms until it holds; false if it still does not after `limit`.
pub async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The defaults, on 127.0.0.1 port 0 with two workers (heartbeat and limits at their defaults,
/// so no ping interferes unless a test asks for one).
pub fn config() -> Config {
    Config {
        host: "127.0.0.1".to_owned(),
        port: 0,
        workers: 2,
        ..Config::default()
    }
}

/// `config()` with a heartbeat of `interval` / `timeout` milliseconds.
pub fn fast_ping(interval: u64, timeout: u64) -> Config {
    Config {
        ping_interval: Duration::from_millis(interval),
        ping_timeout: Duration::from_millis(timeout),
        ..config()
    }
}

/// A server running in the test's actix system.
pub struct TestServer {
    pub addr: SocketAddr,
    pub handle: ServerHandle,
    pub shared: Arc<Shared>,
    pub path: String,
    /// The task running the server (`RunningServer::run`).
    pub run: Option<actix_rt::task::JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    /// Starts `Kit` (the hub plus test events) with `config`.
    pub fn start(config: Config) -> TestServer {
        TestServer::start_with(config, Kit::default())
    }

    /// Starts `app` with `config`.
    pub fn start_with(config: Config, app: impl Handler) -> TestServer {
        let path = config.path.clone();
        TestServer::start_server(Server::new(config, app), &path)
    }

    /// Starts a configured `server` whose Socket.IO path is `path`.
    pub fn start_server(server: Server, path: &str) -> TestServer {
        let running = server.bind().expect("bind 127.0.0.1:0");
        TestServer {
            addr: running.local_addr(),
            handle: running.handle(),
            shared: running.shared(),
            path: path.to_owned(),
            run: Some(actix_rt::spawn(running.run())),
        }
    }

    /// `http://addr/socket.io/?<query>`.
    pub fn url(&self, query: &str) -> String {
        format!("http://{}{}?{}", self.addr, self.path, query)
    }

    /// `http://addr<path>?<query>` for another Engine.IO path.
    pub fn url_at(&self, path: &str, query: &str) -> String {
        format!("http://{}{}?{}", self.addr, path, query)
    }

    /// `http://addr<path>` for another endpoint.
    pub fn http(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// `ws://addr/socket.io/?<query>`.
    pub fn ws_url(&self, query: &str) -> String {
        format!("ws://{}{}?{}", self.addr, self.path, query)
    }

    /// How many Engine.IO sessions the server holds.
    pub fn sessions(&self) -> usize {
        self.shared.session_count()
    }

    /// Waits until the server holds exactly `n` sessions; panics after [`WAIT`].
    pub async fn wait_sessions(&self, n: usize) {
        let shared = self.shared.clone();
        assert!(
            eventually(WAIT, || shared.session_count() == n).await,
            "expected {n} sessions, still {}",
            self.sessions()
        );
    }
}

// -- HTTP ------------------------------------------------------------------------------------

/// An HTTP client whose requests give up after 10 s (every test wait is shorter).
pub fn http_client() -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .finish()
}

/// An answer: status, headers, body as text.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    /// The body parsed as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }

    /// A header's value, if present.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ASCII header").to_owned())
    }

    /// Asserts an Engine.IO error: HTTP 400 with `{"code":code,"message":…}`.
    #[track_caller]
    pub fn assert_eio_error(&self, code: u64) {
        assert_eq!(
            self.status,
            StatusCode::BAD_REQUEST,
            "body: {:?}",
            self.body
        );
        let body = self.json();
        assert_eq!(body["code"], json!(code), "body: {body}");
        assert!(body["message"].is_string(), "body: {body}");
    }
}

/// Sends `method url` with `headers` and `body`; bounded by [`WAIT`] plus the long-poll time.
pub async fn request(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Reply {
    let client = http_client();
    let mut req = client.request(method, url);
    for (k, v) in headers {
        req = req.insert_header((*k, *v));
    }
    let mut res = within(Duration::from_secs(10), url, req.send_body(body.into()))
        .await
        .unwrap_or_else(|e| panic!("request to {url} failed: {e}"));
    let bytes = within(WAIT, "response body", res.body().limit(16 << 20))
        .await
        .expect("response body");
    Reply {
        status: res.status(),
        headers: res.headers().clone(),
        body: String::from_utf8(bytes.to_vec()).expect("UTF-8 body"),
    }
}

/// `GET url`.
pub async fn get(url: &str) -> Reply {
    request(Method::GET, url, &[], Bytes::new()).await
}

// -- Engine.IO over long-polling ------------------------------------------------------------

/// A raw long-polling session.
pub struct Polling {
    /// The query for this session's requests (`EIO=4&transport=polling&sid=…`).
    pub url: String,
    pub sid: String,
    /// The handshake JSON (the open packet without its `0`).
    pub open: Value,
}

impl Polling {
    /// Opens a session with a polling handshake.
    pub async fn open(srv: &TestServer) -> Polling {
        let reply = get(&srv.url("EIO=4&transport=polling")).await;
        assert_eq!(reply.status, StatusCode::OK, "handshake: {:?}", reply.body);
        let text = reply
            .body
            .strip_prefix('0')
            .unwrap_or_else(|| panic!("not an open packet: {:?}", reply.body));
        let open: Value = serde_json::from_str(text).expect("handshake JSON");
        let sid = open["sid"].as_str().expect("sid").to_owned();
        Polling {
            url: srv.url(&format!("EIO=4&transport=polling&sid={sid}")),
            sid,
            open,
        }
    }

    /// One GET, whatever the answer.
    pub async fn get(&self) -> Reply {
        get(&self.url).await
    }

    /// One GET that must succeed; its records, split on `\x1e`.
    pub async fn poll(&self) -> Vec<String> {
        let reply = self.get().await;
        assert_eq!(reply.status, StatusCode::OK, "poll: {:?}", reply.body);
        reply.body.split('\x1e').map(str::to_owned).collect()
    }

    /// One GET that must succeed with exactly one record.
    pub async fn poll_one(&self) -> String {
        let mut records = self.poll().await;
        assert_eq!(records.len(), 1, "expected one record: {records:?}");
        records.remove(0)
    }

    /// One POST of `body`, whatever the answer.
    pub async fn post(&self, body: impl Into<Bytes>) -> Reply {
        request(Method::POST, &self.url, &[], body).await
    }

    /// One POST that must be answered `200 ok`.
    pub async fn post_ok(&self, body: impl Into<Bytes>) {
        let reply = self.post(body).await;
        assert_eq!(reply.status, StatusCode::OK, "post: {:?}", reply.body);
        assert_eq!(reply.body, "ok");
    }

    /// Socket.IO CONNECT to `/`; the socket id from the reply.
    pub async fn connect(&self) -> String {
        self.post_ok("40").await;
        let reply = parse(&self.poll_one().await);
        assert_eq!(reply.kind, 0, "CONNECT reply: {reply:?}");
        reply.data.expect("CONNECT payload")["sid"]
            .as_str()
            .expect("socket id")
            .to_owned()
    }
}

/// Opens a polling session and connects to `/`.
pub async fn polling_client(srv: &TestServer) -> (Polling, String) {
    let p = Polling::open(srv).await;
    let id = p.connect().await;
    (p, id)
}

// -- Engine.IO over WebSocket ---------------------------------------------------------------

type Framed = actix_codec::Framed<awc::BoxedSocket, ws::Codec>;

/// What a WebSocket client saw next.
#[derive(Debug, Clone, PartialEq)]
pub enum WsEvent {
    Text(String),
    Binary(Bytes),
    /// A close frame (with its reason) or the end of the stream (`None`).
    Closed(Option<CloseReason>),
}

/// A raw WebSocket connection.
pub struct Ws {
    framed: Framed,
    closed: bool,
}

impl Ws {
    /// Opens a WebSocket to `url`.
    pub async fn connect(url: &str) -> Ws {
        let (res, framed) = within(WAIT, "websocket handshake", http_client().ws(url).connect())
            .await
            .unwrap_or_else(|e| panic!("websocket to {url} failed: {e}"));
        assert_eq!(res.status(), StatusCode::SWITCHING_PROTOCOLS);
        Ws {
            framed,
            closed: false,
        }
    }

    /// Opens a session with a WebSocket handshake; the connection and the handshake JSON.
    pub async fn open(srv: &TestServer) -> (Ws, Value) {
        let mut ws = Ws::connect(&srv.ws_url("EIO=4&transport=websocket")).await;
        let text = ws.recv_text().await;
        let open = text
            .strip_prefix('0')
            .unwrap_or_else(|| panic!("not an open packet: {text:?}"));
        let open: Value = serde_json::from_str(open).expect("handshake JSON");
        (ws, open)
    }

    /// Sends a text frame.
    pub async fn send(&mut self, text: &str) {
        within(
            WAIT,
            "websocket send",
            self.framed
                .send(ws::Message::Text(ByteString::from(text.to_owned()))),
        )
        .await
        .expect("websocket send");
    }

    /// Sends a binary frame.
    pub async fn send_binary(&mut self, bytes: impl Into<Bytes>) {
        within(
            WAIT,
            "websocket send",
            self.framed.send(ws::Message::Binary(bytes.into())),
        )
        .await
        .expect("websocket send");
    }

    /// Closes the connection from the client side (close frame, then the socket is dropped).
    pub async fn close(mut self) {
        let _ = within(
            WAIT,
            "websocket close",
            self.framed.send(ws::Message::Close(None)),
        )
        .await;
        // wait for the server's close frame (or the end), so the close is really through
        let _ = self.recv_within(WAIT).await;
    }

    /// The next message, or `None` when nothing arrives within `limit`.
    pub async fn recv_within(&mut self, limit: Duration) -> Option<WsEvent> {
        if self.closed {
            return Some(WsEvent::Closed(None));
        }
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let next = tokio::time::timeout_at(deadline, self.framed.next()).await;
            let frame = match next {
                Err(_) => return None,
                Ok(None) | Ok(Some(Err(_))) => {
                    self.closed = true;
                    return Some(WsEvent::Closed(None));
                }
                Ok(Some(Ok(frame))) => frame,
            };
            return Some(match frame {
                ws::Frame::Text(t) => WsEvent::Text(String::from_utf8(t.to_vec()).expect("UTF-8")),
                ws::Frame::Binary(b) => WsEvent::Binary(b),
                ws::Frame::Close(reason) => {
                    self.closed = true;
                    WsEvent::Closed(reason)
                }
                ws::Frame::Ping(_) | ws::Frame::Pong(_) | ws::Frame::Continuation(_) => continue,
            });
        }
    }

    /// The next message; panics after [`WAIT`].
    pub async fn recv(&mut self) -> WsEvent {
        self.recv_within(WAIT)
            .await
            .unwrap_or_else(|| panic!("no websocket message within {WAIT:?}"))
    }

    /// The next message, which must be text.
    pub async fn recv_text(&mut self) -> String {
        match self.recv().await {
            WsEvent::Text(t) => t,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    /// The next message, which must be binary.
    pub async fn recv_binary(&mut self) -> Bytes {
        match self.recv().await {
            WsEvent::Binary(b) => b,
            other => panic!("expected a binary frame, got {other:?}"),
        }
    }

    /// Reads until the server closes the connection (within `limit`); what came before.
    pub async fn expect_closed_within(&mut self, limit: Duration) -> Vec<WsEvent> {
        let deadline = Instant::now() + limit;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv_within(left).await {
                Some(WsEvent::Closed(_)) => return seen,
                Some(other) => seen.push(other),
                None => panic!("websocket still open after {limit:?}; saw {seen:?}"),
            }
        }
    }

    /// Reads until the server closes the connection; panics after [`WAIT`].
    pub async fn expect_closed(&mut self) -> Vec<WsEvent> {
        self.expect_closed_within(WAIT).await
    }

    /// Asserts that nothing arrives for `quiet`.
    pub async fn expect_silence(&mut self, quiet: Duration) {
        if let Some(e) = self.recv_within(quiet).await {
            panic!("expected silence, got {e:?}");
        }
    }

    /// Socket.IO CONNECT to `/`; the socket id from the reply.
    pub async fn connect_ns(&mut self) -> String {
        self.send("40").await;
        let reply = self.recv_sio().await;
        assert_eq!(reply.kind, 0, "CONNECT reply: {reply:?}");
        reply.data.expect("CONNECT payload")["sid"]
            .as_str()
            .expect("socket id")
            .to_owned()
    }

    /// The next message as a Socket.IO packet.
    pub async fn recv_sio(&mut self) -> Sio {
        parse(&self.recv_text().await)
    }

    /// Emits `args[0](args[1..])`, with an ack id if given.
    pub async fn emit(&mut self, ack: Option<u64>, args: Value) {
        self.send(&event_text(ack, &args)).await;
    }

    /// Emits with ack id `ack` and returns the ack's arguments (other packets before it fail).
    pub async fn call(&mut self, ack: u64, args: Value) -> Value {
        self.emit(Some(ack), args).await;
        let reply = self.recv_sio().await;
        assert_eq!((reply.kind, reply.id), (3, Some(ack)), "ack: {reply:?}");
        reply.data.expect("ack payload")
    }

    /// The next packet, which must be an EVENT; its `[name, args…]`.
    pub async fn recv_event(&mut self) -> Value {
        let p = self.recv_sio().await;
        assert_eq!(p.kind, 2, "expected an EVENT: {p:?}");
        p.data.expect("event payload")
    }
}

/// Opens a WebSocket session and connects to `/`.
pub async fn ws_client(srv: &TestServer) -> (Ws, String) {
    let (mut ws, _) = Ws::open(srv).await;
    let id = ws.connect_ns().await;
    (ws, id)
}

// -- Socket.IO packets ----------------------------------------------------------------------

/// A Socket.IO packet as read from an Engine.IO message (`4…`).
#[derive(Debug, Clone, PartialEq)]
pub struct Sio {
    pub kind: u8,
    pub attachments: usize,
    pub ns: String,
    pub id: Option<u64>,
    pub data: Option<Value>,
}

/// Parses an Engine.IO message frame `4<type>[<n>-][<ns>,][<id>][<json>]`; panics on anything
/// else (the server's output must always parse).
pub fn parse(frame: &str) -> Sio {
    let text = frame
        .strip_prefix('4')
        .unwrap_or_else(|| panic!("not a message packet: {frame:?}"));
    let mut rest = text;
    let kind = rest
        .bytes()
        .next()
        .filter(u8::is_ascii_digit)
        .unwrap_or_else(|| panic!("no packet type: {frame:?}"))
        - b'0';
    rest = &rest[1..];
    let mut attachments = 0;
    if kind == 5 || kind == 6 {
        let (n, after) = rest.split_once('-').expect("attachment count");
        attachments = n.parse().expect("attachment count");
        rest = after;
    }
    let mut ns = "/".to_owned();
    if rest.starts_with('/') {
        match rest.split_once(',') {
            Some((n, after)) => {
                ns = n.to_owned();
                rest = after;
            }
            None => {
                ns = rest.to_owned();
                rest = "";
            }
        }
    }
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let id = (digits > 0).then(|| rest[..digits].parse().expect("ack id"));
    rest = &rest[digits..];
    let data = (!rest.is_empty()).then(|| {
        serde_json::from_str(rest).unwrap_or_else(|e| panic!("bad JSON ({e}) in {frame:?}"))
    });
    Sio {
        kind,
        attachments,
        ns,
        id,
        data,
    }
}

/// The Engine.IO message of an EVENT `42[<id>]<args>` in `/`.
pub fn event_text(ack: Option<u64>, args: &Value) -> String {
    match ack {
        Some(id) => format!("42{id}{args}"),
        None => format!("42{args}"),
    }
}

// -- the test application -------------------------------------------------------------------

/// The hub plus events the tests need, written only against the public API:
/// - `echo`, …args → emit `echo` with the same args (binary included);
/// - `echo-ack`, …args, ack → ack(…args);
/// - `server-ack`, `{"event","args","timeout_ms"}`, ack → emit `event(…args)` to the sender with
///   an ack, then ack `{"ok":true,"args":[…]}` or `{"ok":false,"error":"timeout"}`;
/// - `broadcast`, `{"rooms":[…],"event","args","volatile"}`, ack → `ns.to(r1).to(r2)….emit`,
///   acked once the room actor has taken the broadcast;
/// - `sockets-join` / `sockets-leave`, `{"of": room or socket id, "rooms":[…]}`, ack →
///   `ns.sockets_join` / `ns.sockets_leave`, acked once the room actor has done it;
/// - `flood`, `{"room","count","volatile","size"}`, ack → `count` broadcasts `flood(i)` to room
///   (with a second argument of `size` bytes when `size` is given).
#[derive(Default)]
pub struct Kit {
    hub: Hub,
}

impl Handler for Kit {
    fn on_event(&self, socket: &Socket, event: Event) {
        let event = match self.hub.handle(socket, event) {
            Ok(()) => return,
            Err(event) => event,
        };
        let spec = event.args.first().cloned().unwrap_or(Value::Null);
        match event.name.as_str() {
            "echo" => socket.emit_binary("echo", event.args, event.bins),
            "echo-ack" => {
                if let Some(ack) = event.ack {
                    ack.send_binary(event.args, event.bins);
                }
            }
            "server-ack" => {
                let name = spec["event"].as_str().unwrap_or("ask").to_owned();
                let args = spec["args"].as_array().cloned().unwrap_or_default();
                let timeout = Duration::from_millis(spec["timeout_ms"].as_u64().unwrap_or(1000));
                let fut = socket.emit_with_ack(&name, args, vec![], timeout);
                let ack = event.ack;
                actix::spawn(async move {
                    let answer = match fut.await {
                        Ok(data) if data.bins.is_empty() => json!({"ok": true, "args": data.args}),
                        Ok(data) => {
                            let sizes: Vec<usize> = data.bins.iter().map(Bytes::len).collect();
                            json!({"ok": true, "args": data.args, "bins": sizes})
                        }
                        Err(e) => json!({"ok": false, "error": e.to_string()}),
                    };
                    if let Some(ack) = ack {
                        ack.send(vec![answer]);
                    }
                });
            }
            "broadcast" => {
                let ns = socket.namespace().clone();
                let rooms: Vec<String> = spec["rooms"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|r| r.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                let mut op = ns.all();
                for r in &rooms {
                    op = op.to(r);
                }
                if spec["volatile"].as_bool() == Some(true) {
                    op = op.volatile();
                }
                let name = spec["event"].as_str().unwrap_or("news");
                op.emit(name, spec["args"].as_array().cloned().unwrap_or_default());
                ack_after_room_actor(ns, event.ack);
            }
            "sockets-join" | "sockets-leave" => {
                let ns = socket.namespace().clone();
                let target = Target {
                    rooms: vec![Room::from(spec["of"].as_str().unwrap_or(""))],
                    ..Target::default()
                };
                let rooms: Vec<Room> = spec["rooms"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).map(Room::from).collect())
                    .unwrap_or_default();
                if event.name == "sockets-join" {
                    ns.sockets_join(target, rooms);
                } else {
                    ns.sockets_leave(target, rooms);
                }
                ack_after_room_actor(ns, event.ack);
            }
            "flood" => {
                let ns = socket.namespace().clone();
                let room = spec["room"].as_str().unwrap_or("flood");
                for i in 0..spec["count"].as_u64().unwrap_or(100) {
                    let mut op = ns.to(room);
                    if spec["volatile"].as_bool() == Some(true) {
                        op = op.volatile();
                    }
                    let size = spec["size"].as_u64().unwrap_or(0) as usize;
                    if size > 0 {
                        op.emit("flood", vec![json!(i), json!("x".repeat(size))]);
                    } else {
                        op.emit("flood", vec![json!(i)]);
                    }
                }
                ack_after_room_actor(ns, event.ack);
            }
            _ => {
                if let Some(ack) = event.ack {
                    ack.send(vec![json!({"ok": false, "error": "unknown event"})]);
                }
            }
        }
    }

    fn on_room_event(&self, ns: &Namespace, event: &RoomEvent) {
        self.hub.on_room_event(ns, event);
    }
}

/// Acks `{"ok":true}` once the room actor has handled everything sent to it before (a query
/// goes through the same mailbox, after the broadcasts).
fn ack_after_room_actor(ns: Namespace, ack: Option<ferrio::server::AckSender>) {
    actix::spawn(async move {
        let _ = ns.rooms().await;
        if let Some(ack) = ack {
            ack.send(vec![json!({"ok": true})]);
        }
    });
}
