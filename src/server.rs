//! The public API of ferrio and its actix-web wiring.
//!
//! An application implements [`Handler`] (Socket.IO) and, if it wants raw Engine.IO on another
//! path, [`EngineHandler`]; [`Server`] binds them to HTTP. Inside handlers, a [`Socket`] is the
//! namespace connection (emit, acks, rooms, disconnect) and a [`Namespace`] reaches every socket
//! of a namespace (broadcasts, room queries). The hub (`crate::hub`) and the conformance example
//! are written only against this module.
//!
//! ```no_run
//! use ferrio::server::{Event, Handler, Server, Socket};
//! struct Echo;
//! impl Handler for Echo {
//!     fn on_event(&self, socket: &Socket, event: Event) {
//!         socket.emit_binary(&event.name, event.args, event.bins);
//!     }
//! }
//! # async fn run() -> std::io::Result<()> {
//! Server::new(ferrio::config::Config::default(), Echo).bind()?.run_until_signal().await
//! # }
//! ```

mod http;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bytes::Bytes;
use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::oneshot;

use crate::actors::messages::*;
use crate::actors::room::{RoomActor, RoomStats};
use crate::actors::socket::{CloseSession, Session};
use crate::config::Config;

pub use crate::actors::messages::{
    AckData, AckError, DisconnectReason, Frame, HandshakeData, JoinError, JoinOutcome, LeaveCause,
    Room, RoomEvent, SocketId, Target,
};

/// Why a CONNECT was refused by [`Handler::authorize`]; the client gets `connect_error`.
#[derive(Debug, Clone)]
pub struct ConnectRefusal {
    /// The error message the client sees.
    pub message: String,
    /// Optional extra data (`err.data` on the client).
    pub data: Option<Value>,
}

/// A Socket.IO application. Every method runs inside the session's actor: it must not block;
/// spawn (`actix::spawn`) anything that awaits.
pub trait Handler: Send + Sync + 'static {
    /// Accepts or refuses a CONNECT to `ns` with its auth payload (a middleware).
    fn authorize(
        &self,
        _ns: &str,
        _auth: &Value,
        _handshake: &HandshakeData,
    ) -> Result<(), ConnectRefusal> {
        Ok(())
    }
    /// A socket connected (its CONNECT reply is already queued).
    fn on_connect(&self, _socket: &Socket) {}
    /// The client emitted an event.
    fn on_event(&self, socket: &Socket, event: Event);
    /// The socket is gone, for `reason`.
    fn on_disconnect(&self, _socket: &Socket, _reason: DisconnectReason) {}
    /// Room lifecycle in a namespace (runs inside the room actor).
    fn on_room_event(&self, _ns: &Namespace, _event: &RoomEvent) {}
}

/// A raw Engine.IO application (no Socket.IO on top).
pub trait EngineHandler: Send + Sync + 'static {
    /// A session opened.
    fn on_open(&self, _socket: &EngineSocket) {}
    /// The client sent a message (text without its `4`, or binary).
    fn on_message(&self, socket: &EngineSocket, message: Frame);
    /// The session ended.
    fn on_close(&self, _socket: &EngineSocket, _reason: DisconnectReason) {}
}

/// An event a client emitted.
#[derive(Debug)]
pub struct Event {
    /// The event name.
    pub name: String,
    /// The arguments after the name; binary values are placeholders into `bins`.
    pub args: Vec<Value>,
    /// Binary attachments.
    pub bins: Vec<Bytes>,
    /// Present when the client asked for an acknowledgement.
    pub ack: Option<AckSender>,
}

impl Event {
    pub(crate) fn new(
        name: String,
        args: Vec<Value>,
        bins: Vec<Bytes>,
        ack_id: Option<u64>,
        socket: &Socket,
    ) -> Self {
        Event {
            name,
            args,
            bins,
            ack: ack_id.map(|ack_id| AckSender {
                session: socket.0.session.clone(),
                socket: socket.0.info.id.clone(),
                ack_id,
            }),
        }
    }
}

/// Answers one client acknowledgement; consumed by `send`, so it answers at most once.
#[derive(Debug)]
pub struct AckSender {
    session: Addr<Session>,
    socket: SocketId,
    ack_id: u64,
}

impl AckSender {
    /// Acknowledges with JSON arguments.
    pub fn send(self, args: Vec<Value>) {
        self.send_binary(args, Vec::new());
    }

    /// Acknowledges with arguments carrying binary placeholders into `bins`.
    pub fn send_binary(self, args: Vec<Value>, bins: Vec<Bytes>) {
        self.session.do_send(SendAck {
            id: self.socket,
            ack_id: self.ack_id,
            args,
            bins,
        });
    }
}

struct SocketInner {
    ns: Namespace,
    session: Addr<Session>,
    sid: Sid,
    info: Arc<SocketInfo>,
}

/// One namespace connection of a client. Cheap to clone.
#[derive(Clone)]
pub struct Socket(Arc<SocketInner>);

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Socket({} {})", self.ns(), self.id())
    }
}

impl Socket {
    pub(crate) fn new(
        ns: Arc<str>,
        room_actor: Addr<RoomActor>,
        session: Addr<Session>,
        sid: Sid,
        info: Arc<SocketInfo>,
    ) -> Self {
        Socket(Arc::new(SocketInner {
            ns: Namespace::from_parts(ns, room_actor),
            session,
            sid,
            info,
        }))
    }

    /// The socket id (also its own room).
    pub fn id(&self) -> &SocketId {
        &self.0.info.id
    }

    /// The namespace name.
    pub fn ns(&self) -> &str {
        &self.0.ns.name
    }

    /// The Engine.IO session id.
    pub fn sid(&self) -> &Sid {
        &self.0.sid
    }

    /// The namespace this socket belongs to.
    pub fn namespace(&self) -> &Namespace {
        &self.0.ns
    }

    /// The CONNECT auth payload (`{}` when none).
    pub fn auth(&self) -> &Value {
        &self.0.info.auth
    }

    /// The HTTP request that opened the session.
    pub fn handshake(&self) -> &HandshakeData {
        &self.0.info.handshake
    }

    /// Sends `event(...args)` to this client.
    pub fn emit(&self, event: &str, args: Vec<Value>) {
        self.emit_binary(event, args, Vec::new());
    }

    /// Sends `event(...args)` with binary attachments (args hold placeholders into `bins`).
    pub fn emit_binary(&self, event: &str, args: Vec<Value>, bins: Vec<Bytes>) {
        let packet = Encoded::event(self.ns(), event, args, bins);
        self.0.session.do_send(ToSocket::Deliver {
            packet,
            volatile: false,
        });
    }

    /// Sends `event(...args)` and waits up to `timeout` for the client's acknowledgement.
    pub fn emit_with_ack(
        &self,
        event: &str,
        args: Vec<Value>,
        bins: Vec<Bytes>,
        timeout: Duration,
    ) -> impl Future<Output = Result<AckData, AckError>> {
        let (tx, rx) = oneshot::channel();
        self.0.session.do_send(EmitWithAck {
            id: self.id().clone(),
            event: event.to_owned(),
            args,
            bins,
            timeout,
            reply: tx,
        });
        async move { rx.await.unwrap_or(Err(AckError::Disconnected)) }
    }

    /// Joins `room`; resolves to the room's size on this node afterwards.
    pub fn join(&self, room: &str) -> impl Future<Output = Result<JoinOutcome, JoinError>> {
        let fut = self.0.ns.addr.send(Join {
            id: self.id().clone(),
            room: Room::from(room),
        });
        async move { fut.await.unwrap_or(Err(JoinError::UnknownSocket)) }
    }

    /// Leaves `room`; resolves to the room's size on this node afterwards.
    pub fn leave(&self, room: &str) -> impl Future<Output = JoinOutcome> {
        let fut = self.0.ns.addr.send(Leave {
            id: self.id().clone(),
            room: Room::from(room),
        });
        async move {
            fut.await.unwrap_or(JoinOutcome {
                size: 0,
                changed: false,
            })
        }
    }

    /// A broadcast to `room` that leaves this socket out.
    pub fn to(&self, room: &str) -> BroadcastOperator {
        self.0.ns.to(room).except(self.id().as_str())
    }

    /// Disconnects this namespace socket (the client sees `io server disconnect`).
    pub fn disconnect(&self) {
        self.0.session.do_send(ToSocket::Disconnect {
            id: self.id().clone(),
            reason: DisconnectReason::ServerDisconnect,
        });
    }

    /// Closes the whole Engine.IO session (the client sees `transport close`, and reconnects).
    pub fn close_session(&self) {
        self.0.session.do_send(CloseSession {
            reason: DisconnectReason::ForcedClose,
        });
    }
}

/// Every socket of one namespace on this node. Cheap to clone.
#[derive(Clone)]
pub struct Namespace {
    name: Arc<str>,
    addr: Addr<RoomActor>,
}

impl Namespace {
    pub(crate) fn from_parts(name: Arc<str>, addr: Addr<RoomActor>) -> Self {
        Namespace { name, addr }
    }

    /// The namespace name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A broadcast to the sockets in `room`.
    pub fn to(&self, room: &str) -> BroadcastOperator {
        BroadcastOperator {
            ns: self.clone(),
            target: Target::default(),
            volatile: false,
        }
        .to(room)
    }

    /// A broadcast to every socket of the namespace.
    pub fn all(&self) -> BroadcastOperator {
        BroadcastOperator {
            ns: self.clone(),
            target: Target::default(),
            volatile: false,
        }
    }

    /// The rooms with their sizes (socket-id rooms left out).
    pub async fn rooms(&self) -> Vec<(Room, usize)> {
        self.addr.send(ListRooms).await.unwrap_or_default()
    }

    /// The ids of the sockets in `room`.
    pub async fn members(&self, room: &str) -> Vec<SocketId> {
        self.addr
            .send(RoomMembers {
                room: Room::from(room),
            })
            .await
            .unwrap_or_default()
    }

    /// Every member leaves `room`, after receiving `notice` (an event and its args) if given.
    /// Resolves to how many sockets left.
    pub async fn delete_room(&self, room: &str, notice: Option<(&str, Vec<Value>)>) -> usize {
        let notice = notice.map(|(event, args)| Encoded::event(&self.name, event, args, vec![]));
        self.addr
            .send(DeleteRoom {
                room: Room::from(room),
                notice,
            })
            .await
            .unwrap_or(0)
    }

    /// The target sockets with their handshake and rooms.
    pub async fn fetch_sockets(&self, target: Target) -> Vec<(Arc<SocketInfo>, Vec<Room>)> {
        self.addr
            .send(FetchSockets { target })
            .await
            .unwrap_or_default()
    }

    /// The target sockets join `rooms`.
    pub fn sockets_join(&self, target: Target, rooms: Vec<Room>) {
        self.addr.do_send(SocketsJoin { target, rooms });
    }

    /// The target sockets leave `rooms`.
    pub fn sockets_leave(&self, target: Target, rooms: Vec<Room>) {
        self.addr.do_send(SocketsLeave { target, rooms });
    }

    /// Disconnects the target sockets (`close` ends their whole session).
    pub fn disconnect_sockets(&self, target: Target, close: bool) {
        self.addr.do_send(DisconnectSockets { target, close });
    }

    pub(crate) fn remove(&self, id: &SocketId) {
        self.addr.do_send(RemoveSocket { id: id.clone() });
    }

    /// The room actor behind this namespace (for the cluster bridge).
    pub fn actor(&self) -> &Addr<RoomActor> {
        &self.addr
    }
}

/// A broadcast being built: `ns.to("a").to("b").except("c").emit(...)`.
#[must_use = "a broadcast does nothing until emit"]
pub struct BroadcastOperator {
    ns: Namespace,
    target: Target,
    volatile: bool,
}

impl BroadcastOperator {
    /// Also sockets in `room`.
    pub fn to(mut self, room: &str) -> Self {
        self.target.rooms.push(Room::from(room));
        self
    }

    /// Not the sockets in `room` (a socket id leaves out that socket).
    pub fn except(mut self, room: &str) -> Self {
        self.target.except.push(Room::from(room));
        self
    }

    /// Room names only: a socket id in `to` reaches nobody (hub clients may not address a
    /// socket through its own-id room).
    pub fn rooms_only(mut self) -> Self {
        self.target.rooms_only = true;
        self
    }

    /// May be dropped for clients that are not ready.
    pub fn volatile(mut self) -> Self {
        self.volatile = true;
        self
    }

    /// Sends `event(...args)`, encoded once.
    pub fn emit(self, event: &str, args: Vec<Value>) {
        self.emit_binary(event, args, Vec::new());
    }

    /// Sends `event(...args)` with binary attachments, encoded once.
    pub fn emit_binary(self, event: &str, args: Vec<Value>, bins: Vec<Bytes>) {
        let packet = Encoded::event(&self.ns.name, event, args, bins);
        self.ns.addr.do_send(Broadcast {
            target: self.target,
            packet,
            volatile: self.volatile,
            local_origin: true,
        });
    }
}

/// A raw Engine.IO session.
#[derive(Clone)]
pub struct EngineSocket {
    session: Addr<Session>,
    sid: Sid,
}

impl EngineSocket {
    pub(crate) fn new(session: Addr<Session>, sid: Sid) -> Self {
        EngineSocket { session, sid }
    }

    /// The session id.
    pub fn sid(&self) -> &Sid {
        &self.sid
    }

    /// Sends a message (text or binary).
    pub fn send(&self, frame: Frame) {
        self.session.do_send(EngineSend { frame });
    }

    /// Closes the session.
    pub fn close(&self) {
        self.session.do_send(CloseSession {
            reason: DisconnectReason::ForcedClose,
        });
    }
}

/// State shared by the HTTP workers and the actors of one server.
pub struct Shared {
    pub(crate) config: Config,
    pub(crate) app: Arc<dyn Handler>,
    sessions: Mutex<HashMap<Sid, Addr<Session>>>,
    namespaces: Mutex<HashMap<String, Addr<RoomActor>>>,
    rooms_arbiter: ArbiterHandle,
    pub(crate) draining: AtomicBool,
    /// False while a cluster bridge cannot reach Redis (`/readyz` answers 503).
    pub(crate) cluster_ready: AtomicBool,
    stats: Arc<RoomStats>,
}

impl Shared {
    /// The room actor of `ns`, started on first use.
    pub(crate) fn namespace(&self, ns: &str) -> Addr<RoomActor> {
        let mut map = self.namespaces.lock();
        if let Some(a) = map.get(ns) {
            return a.clone();
        }
        let name: Arc<str> = Arc::from(ns);
        let app = self.app.clone();
        let mailbox = self.config.room_mailbox;
        let stats = self.stats.clone();
        let addr = RoomActor::start_in_arbiter(&self.rooms_arbiter, move |_| {
            RoomActor::new(name, app, mailbox, stats)
        });
        map.insert(ns.to_owned(), addr.clone());
        addr
    }

    pub(crate) fn insert_session(&self, sid: Sid, addr: Addr<Session>) {
        self.sessions.lock().insert(sid, addr);
    }

    pub(crate) fn session(&self, sid: &str) -> Option<Addr<Session>> {
        self.sessions.lock().get(&Sid::from(sid)).cloned()
    }

    pub(crate) fn remove_session(&self, sid: &Sid) {
        self.sessions.lock().remove(sid);
    }

    /// How many Engine.IO sessions are open.
    pub fn session_count(&self) -> usize {
        self.sessions.lock().len()
    }
}

/// A server being configured.
pub struct Server {
    config: Config,
    app: Arc<dyn Handler>,
    engines: Vec<(String, Arc<dyn EngineHandler>)>,
}

impl Server {
    /// A server running `app` on every namespace that `config` accepts.
    pub fn new(config: Config, app: impl Handler) -> Self {
        Server {
            config,
            app: Arc::new(app),
            engines: Vec::new(),
        }
    }

    /// Also serves raw Engine.IO on `path` (e.g. `/engine.io/`).
    pub fn engine(mut self, path: &str, handler: impl EngineHandler) -> Self {
        self.engines.push((path.to_owned(), Arc::new(handler)));
        self
    }

    /// Binds the listener (inside an actix system). Port 0 picks a free port.
    pub fn bind(self) -> std::io::Result<RunningServer> {
        let shared = Arc::new(Shared {
            app: self.app,
            sessions: Mutex::new(HashMap::new()),
            namespaces: Mutex::new(HashMap::new()),
            rooms_arbiter: Arbiter::new().handle(),
            draining: AtomicBool::new(false),
            cluster_ready: AtomicBool::new(true),
            stats: Arc::new(RoomStats::default()),
            config: self.config,
        });
        let (server, addrs) = http::bind(shared.clone(), self.engines)?;
        log::info!(
            "ferrio listening on http://{} path={} namespaces={:?}",
            addrs
                .first()
                .map(|a| a.to_string())
                .unwrap_or_else(|| "?".into()),
            shared.config.path,
            shared.config.namespaces
        );
        Ok(RunningServer {
            shared,
            addrs,
            server,
        })
    }
}

/// A bound server; await `run_until_signal` (the binary) or drive it with a [`ServerHandle`].
pub struct RunningServer {
    shared: Arc<Shared>,
    addrs: Vec<SocketAddr>,
    server: actix_web::dev::Server,
}

impl RunningServer {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addrs
            .first()
            .copied()
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// A handle to stop the server.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            shared: self.shared.clone(),
            server: self.server.handle(),
        }
    }

    /// The state shared by the workers (session counts, …).
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Serves until the handle stops it.
    pub async fn run(self) -> std::io::Result<()> {
        self.server.await
    }

    /// Serves until SIGTERM or SIGINT, then drains: stops accepting, closes every session with
    /// `server shutting down`, and returns.
    pub async fn run_until_signal(self) -> std::io::Result<()> {
        let handle = self.handle();
        actix::spawn(async move {
            wait_for_signal().await;
            log::info!("signal received: draining");
            handle.shutdown().await;
        });
        self.server.await
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = int.recv() => {},
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Stops a running server.
#[derive(Clone)]
pub struct ServerHandle {
    shared: Arc<Shared>,
    server: actix_web::dev::ServerHandle,
}

impl ServerHandle {
    /// Drains and stops: `/readyz` turns 503, every session closes with `server shutting down`,
    /// then the listener stops.
    pub async fn shutdown(&self) {
        self.shared.draining.store(true, Ordering::SeqCst);
        let sessions: Vec<Addr<Session>> = self.shared.sessions.lock().values().cloned().collect();
        log::info!("closing {} sessions", sessions.len());
        for s in sessions {
            s.do_send(CloseSession {
                reason: DisconnectReason::ServerShuttingDown,
            });
        }
        for _ in 0..50 {
            if self.shared.session_count() == 0 {
                break;
            }
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
        self.server.stop(true).await;
    }
}
