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

use crate::actors::bridge::{
    AddNamespace, Bridge, BridgeStats, ClusterFetch, ClusterMembers, ClusterRemote, ClusterRooms,
    ClusterServerSideEmit, Goodbye, Publish,
};
use crate::actors::messages::*;
use crate::actors::room::{RoomActor, RoomStats};
use crate::actors::socket::{CloseSession, Session};
use crate::config::Config;

pub use crate::actors::messages::{
    AckData, AckError, DisconnectReason, Frame, HandshakeData, JoinError, JoinOutcome, LeaveCause,
    Room, RoomEvent, RoomIsSocketId, SocketId, Target,
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
    /// Another node's `serverSideEmit(event, ...args)` (`data` is `[event, ...args]`). The
    /// returned value answers a requester that wants an ack (`null` when `None`): ferrio always
    /// answers, so that requesters never wait for a ferrio node.
    fn on_server_side_emit(&self, _ns: &Namespace, _data: Vec<Value>) -> Option<Value> {
        None
    }
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
        ns: Namespace,
        session: Addr<Session>,
        sid: Sid,
        info: Arc<SocketInfo>,
    ) -> Self {
        Socket(Arc::new(SocketInner {
            ns,
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

    /// Disconnects this namespace socket (the client sees `io server disconnect`; handlers see
    /// `server namespace disconnect`, as in Node).
    pub fn disconnect(&self) {
        self.0.session.do_send(ToSocket::Disconnect {
            id: self.id().clone(),
            reason: DisconnectReason::ServerNamespaceDisconnect,
        });
    }

    /// Closes the whole Engine.IO session (the client sees `transport close`, and reconnects).
    pub fn close_session(&self) {
        self.0.session.do_send(CloseSession {
            reason: DisconnectReason::ForcedClose,
        });
    }
}

/// Every socket of one namespace, on this node and, in a cluster, on every node. Cheap to
/// clone.
#[derive(Clone)]
pub struct Namespace {
    name: Arc<str>,
    addr: Addr<RoomActor>,
    bridge: Option<Cluster>,
}

/// The bridge of a clustered node and whether it reaches Redis now.
#[derive(Clone)]
pub(crate) struct Cluster {
    pub(crate) addr: Addr<Bridge>,
    pub(crate) ready: Arc<AtomicBool>,
}

impl std::ops::Deref for Cluster {
    type Target = Addr<Bridge>;
    fn deref(&self) -> &Addr<Bridge> {
        &self.addr
    }
}

impl Namespace {
    pub(crate) fn from_parts(
        name: Arc<str>,
        addr: Addr<RoomActor>,
        bridge: Option<Cluster>,
    ) -> Self {
        Namespace { name, addr, bridge }
    }

    /// The namespace name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// True when this node is in a cluster whose Redis is unreachable right now: broadcasts
    /// reach local sockets only.
    pub fn is_local_only(&self) -> bool {
        self.bridge
            .as_ref()
            .is_some_and(|b| !b.ready.load(Ordering::SeqCst))
    }

    /// A broadcast to the sockets in `room`.
    pub fn to(&self, room: &str) -> BroadcastOperator {
        self.all().to(room)
    }

    /// A broadcast to every socket of the namespace.
    pub fn all(&self) -> BroadcastOperator {
        BroadcastOperator {
            ns: self.clone(),
            target: Target::default(),
            volatile: false,
        }
    }

    /// The rooms with their sizes (socket-id rooms left out), cluster-wide.
    pub async fn rooms(&self) -> Vec<(Room, usize)> {
        match &self.bridge {
            Some(b) => b
                .send(ClusterRooms {
                    ns: self.name.to_string(),
                })
                .await
                .unwrap_or_default(),
            None => self.addr.send(ListRooms).await.unwrap_or_default(),
        }
    }

    /// The ids of the sockets in `room`, cluster-wide.
    pub async fn members(&self, room: &str) -> Vec<SocketId> {
        match &self.bridge {
            Some(b) => b
                .send(ClusterMembers {
                    ns: self.name.to_string(),
                    room: room.to_owned(),
                })
                .await
                .unwrap_or_default(),
            None => self
                .addr
                .send(RoomMembers {
                    room: Room::from(room),
                })
                .await
                .unwrap_or_default(),
        }
    }

    /// How many sockets are in `room`, cluster-wide.
    pub async fn room_size(&self, room: &str) -> usize {
        self.members(room).await.len()
    }

    /// Every member of `room`, on every node, leaves it after receiving `notice` (an event and
    /// its args) if given. Resolves to how many sockets left on this node.
    pub async fn delete_room(&self, room: &str, notice: Option<(&str, Vec<Value>)>) -> usize {
        if let Some(b) = &self.bridge {
            if let Some((event, args)) = &notice {
                let mut data = vec![Value::String((*event).to_owned())];
                data.extend(args.iter().cloned());
                publish(
                    b,
                    Publish {
                        ns: self.name.clone(),
                        target: Target {
                            rooms: vec![Room::from(room)],
                            ..Default::default()
                        },
                        data,
                        bins: vec![],
                        volatile: false,
                    },
                );
            }
            let rooms = vec![Room::from(room)];
            b.do_send(ClusterRemote::Leave {
                ns: self.name.to_string(),
                target: Target {
                    rooms: rooms.clone(),
                    ..Default::default()
                },
                rooms,
            });
        }
        let notice = notice.map(|(event, args)| Encoded::event(&self.name, event, args, vec![]));
        self.addr
            .send(DeleteRoom {
                room: Room::from(room),
                notice,
            })
            .await
            .unwrap_or(0)
    }

    /// The target sockets of this node with their handshake and rooms.
    pub async fn local_sockets(&self, target: Target) -> Vec<(Arc<SocketInfo>, Vec<Room>)> {
        self.addr
            .send(FetchSockets { target })
            .await
            .unwrap_or_default()
    }

    /// The target sockets of the other nodes (`fetchSockets`; empty when not in a cluster).
    pub async fn remote_sockets(
        &self,
        target: Target,
    ) -> Vec<crate::protocol::cluster::RemoteSocket> {
        let Some(b) = &self.bridge else {
            return Vec::new();
        };
        let (tx, rx) = oneshot::channel();
        b.do_send(ClusterFetch {
            ns: self.name.to_string(),
            target,
            reply: tx,
        });
        rx.await.unwrap_or_default()
    }

    /// `serverSideEmit`: `data` (`[event, ...args]`) to the other nodes' applications. With
    /// `want_ack`, resolves to their answers (`Err` with the partial list on timeout).
    pub async fn server_side_emit(
        &self,
        data: Vec<Value>,
        want_ack: bool,
    ) -> Result<Vec<Value>, Vec<Value>> {
        let Some(b) = &self.bridge else {
            return Ok(Vec::new());
        };
        if !want_ack {
            b.do_send(ClusterServerSideEmit {
                ns: self.name.to_string(),
                data,
                reply: None,
            });
            return Ok(Vec::new());
        }
        let (tx, rx) = oneshot::channel();
        b.do_send(ClusterServerSideEmit {
            ns: self.name.to_string(),
            data,
            reply: Some(tx),
        });
        rx.await.unwrap_or(Err(Vec::new()))
    }

    /// The target sockets join `rooms`, on every node.
    pub fn sockets_join(&self, target: Target, rooms: Vec<Room>) {
        if let Some(b) = &self.bridge {
            b.do_send(ClusterRemote::Join {
                ns: self.name.to_string(),
                target: target.clone(),
                rooms: rooms.clone(),
            });
        }
        self.addr.do_send(SocketsJoin { target, rooms });
    }

    /// The target sockets leave `rooms`, on every node.
    pub fn sockets_leave(&self, target: Target, rooms: Vec<Room>) {
        if let Some(b) = &self.bridge {
            b.do_send(ClusterRemote::Leave {
                ns: self.name.to_string(),
                target: target.clone(),
                rooms: rooms.clone(),
            });
        }
        self.addr.do_send(SocketsLeave { target, rooms });
    }

    /// Disconnects the target sockets on every node (`close` ends their whole session).
    pub fn disconnect_sockets(&self, target: Target, close: bool) {
        if let Some(b) = &self.bridge {
            b.do_send(ClusterRemote::Disconnect {
                ns: self.name.to_string(),
                target: target.clone(),
                close,
            });
        }
        self.addr.do_send(DisconnectSockets { target, close });
    }

    pub(crate) fn remove(&self, id: &SocketId) {
        self.addr.do_send(RemoveSocket { id: id.clone() });
    }

    /// The room actor behind this namespace.
    pub fn actor(&self) -> &Addr<RoomActor> {
        &self.addr
    }
}

/// Hands a broadcast to the bridge; a full bridge mailbox drops it (counted by the bridge's
/// publish path, logged here).
fn publish(bridge: &Cluster, msg: Publish) {
    if bridge.try_send(msg).is_err() {
        log::warn!("bridge mailbox full: broadcast not published to the cluster");
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

    /// Sends `event(...args)` with binary attachments, encoded once for this node and once
    /// for the cluster.
    pub fn emit_binary(self, event: &str, args: Vec<Value>, bins: Vec<Bytes>) {
        let (local, cluster) = self.prepare(event, args, bins);
        self.ns.addr.do_send(local);
        if let (Some(b), Some(p)) = (&self.ns.bridge, cluster) {
            publish(b, p);
        }
    }

    /// Like [`emit_binary`](Self::emit_binary), and resolves to how many sockets of this node
    /// got it. With [`rooms_only`](Self::rooms_only), a room that is the id of a socket of this
    /// node refuses the whole broadcast (nobody receives it). Broadcasts from one caller keep
    /// their order, on this node and across nodes.
    pub fn emit_checked(
        self,
        event: &str,
        args: Vec<Value>,
        bins: Vec<Bytes>,
    ) -> impl Future<Output = Result<usize, RoomIsSocketId>> {
        let (local, cluster) = self.prepare(event, args, bins);
        let sent = self.ns.addr.send(local);
        // Published now, not after the local answer, so that broadcasts from one caller keep
        // their order across nodes. A refused one reaches nobody elsewhere either: the socket
        // id it names lives on this node.
        if let (Some(b), Some(p)) = (&self.ns.bridge, cluster) {
            publish(b, p);
        }
        async move { sent.await.unwrap_or(Ok(0)) }
    }

    /// The local broadcast and, in a cluster, what to publish.
    fn prepare(
        &self,
        event: &str,
        args: Vec<Value>,
        bins: Vec<Bytes>,
    ) -> (Broadcast, Option<Publish>) {
        let mut data = Vec::with_capacity(args.len() + 1);
        data.push(Value::String(event.to_owned()));
        data.extend(args);
        // Only a clustered node needs a second copy of the arguments (for the bridge's msgpack
        // encoding); a standalone node moves them straight into the one encoding.
        let cluster = self.ns.bridge.is_some().then(|| Publish {
            ns: self.ns.name.clone(),
            target: self.target.clone(),
            data: data.clone(),
            bins: bins.clone(),
            volatile: self.volatile,
        });
        let attachments = bins.len();
        let packet = Encoded::new(
            &crate::protocol::socketio::Packet::event(&self.ns.name, data, None, attachments),
            bins,
        );
        let local = Broadcast {
            target: self.target.clone(),
            packet,
            volatile: self.volatile,
            local_origin: true,
        };
        (local, cluster)
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

/// Sessions by sid, each with the Engine.IO path that opened it.
type SessionTable = HashMap<Sid, (Arc<str>, Addr<Session>)>;

/// State shared by the HTTP workers and the actors of one server.
pub struct Shared {
    pub(crate) config: Config,
    pub(crate) app: Arc<dyn Handler>,
    /// Sessions by sid, each with the Engine.IO path that opened it: every path is an
    /// Engine.IO server of its own, so a sid is known only on the path that issued it.
    sessions: Mutex<SessionTable>,
    namespaces: Mutex<HashMap<String, Addr<RoomActor>>>,
    rooms_arbiter: ArbiterHandle,
    bridge: std::sync::OnceLock<Cluster>,
    pub(crate) draining: AtomicBool,
    /// False while a cluster bridge cannot reach Redis (`/readyz` answers 503).
    pub(crate) cluster_ready: Arc<AtomicBool>,
    stats: Arc<RoomStats>,
}

impl Shared {
    /// The namespace `ns`, its room actor started on first use (and announced to the bridge).
    pub(crate) fn namespace(&self, ns: &str) -> Namespace {
        let bridge = self.bridge.get().cloned();
        let mut map = self.namespaces.lock();
        if let Some(a) = map.get(ns) {
            return Namespace::from_parts(Arc::from(ns), a.clone(), bridge);
        }
        let name: Arc<str> = Arc::from(ns);
        let app = self.app.clone();
        let mailbox = self.config.room_mailbox;
        let stats = self.stats.clone();
        let room_bridge = bridge.clone();
        let actor_name = name.clone();
        let addr = RoomActor::start_in_arbiter(&self.rooms_arbiter, move |_| {
            RoomActor::new(actor_name, app, room_bridge, mailbox, stats)
        });
        map.insert(ns.to_owned(), addr.clone());
        if let Some(b) = &bridge {
            b.do_send(AddNamespace {
                ns: ns.to_owned(),
                room: addr.clone(),
            });
        }
        Namespace::from_parts(name, addr, bridge)
    }

    pub(crate) fn insert_session(&self, sid: Sid, path: Arc<str>, addr: Addr<Session>) {
        self.sessions.lock().insert(sid, (path, addr));
    }

    /// The session `sid` opened on the Engine.IO path `path`.
    pub(crate) fn session(&self, sid: &str, path: &str) -> Option<Addr<Session>> {
        self.sessions
            .lock()
            .get(&Sid::from(sid))
            .filter(|(p, _)| &**p == path)
            .map(|(_, addr)| addr.clone())
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
        let cluster_ready = Arc::new(AtomicBool::new(true));
        let shared = Arc::new(Shared {
            app: self.app,
            sessions: Mutex::new(HashMap::new()),
            namespaces: Mutex::new(HashMap::new()),
            rooms_arbiter: Arbiter::new().handle(),
            bridge: std::sync::OnceLock::new(),
            draining: AtomicBool::new(false),
            cluster_ready: cluster_ready.clone(),
            stats: Arc::new(RoomStats::default()),
            config: self.config,
        });
        if let Some(url) = shared.config.redis_url.clone() {
            let c = &shared.config;
            let bridge = Bridge::new(
                c.node_id.clone(),
                url,
                &c.redis_prefix,
                c.request_timeout,
                c.bridge_mailbox,
                shared.app.clone(),
                cluster_ready,
                Arc::new(BridgeStats::default()),
            );
            let addr = Bridge::start_in_arbiter(&Arbiter::new().handle(), move |_| bridge);
            let _ = shared.bridge.set(Cluster {
                addr,
                ready: shared.cluster_ready.clone(),
            });
            log::info!("cluster mode node={} prefix={}", c.node_id, c.redis_prefix);
        }
        // Namespaces with exact names exist from the start, so the cluster counts this node.
        for pattern in &shared.config.namespaces {
            if let crate::config::NamespacePattern::Exact(ns) = pattern {
                shared.namespace(ns);
            }
        }
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
        if let Some(b) = self.shared.bridge.get() {
            let _ = b.addr.send(Goodbye).await;
        }
        let sessions: Vec<Addr<Session>> = self
            .shared
            .sessions
            .lock()
            .values()
            .map(|(_, addr)| addr.clone())
            .collect();
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
