//! The socket actor: one per Engine.IO session.
//!
//! It owns the transport state ([`Transport`]: polling, upgrading, websocket), the heartbeat,
//! the Socket.IO decoder state for binary attachments, the namespace sockets multiplexed on the
//! session, the pending server-to-client acks and the bounded outbound queue. It never parses by
//! hand: every byte goes through `crate::protocol`.
//!
//! # Flow: polling handshake, polls and posts, upgrade to WebSocket
//! ```text
//! client                        HTTP handler                 Session (this actor)
//!  | GET ?transport=polling ---> | start Session (Polling) --> |
//!  | <--- 0{"sid":…}             |                             |
//!  | GET ?sid=X ---------------> | Poll{reply} --------------> | parks the reply until frames
//!  | POST ?sid=X  "40" --------> | Post{body} ---------------> | decode payload, CONNECT …
//!  | <--- 40{"sid":…} (poll)     |                             |
//!  | WS ?sid=X ----------------> | ws::start ----------------> | WsOpened: Polling -> Upgrading
//!  | "2probe" (ws) ------------------------------------------> | "3probe" on ws; parked poll
//!  | <--- "6" (poll)                                           |   gets a noop
//!  | "5" (ws) -----------------------------------------------> | Upgrading -> WebSocket, flush
//! ```
//!
//! # Flow: CONNECT to a namespace
//! ```text
//! "40/admin,{auth}" -> authorize (app) -> room actor: AddSocket (own-id room)
//!                   -> queue "40/admin,{"sid":id}" -> app.on_connect(socket)
//! ```
//!
//! # Slow clients
//! Outbound frames wait in `queue` while no transport can take them (polling between two GETs,
//! an upgrade in progress). Past `FERRIO_SOCKET_BUFFER` frames, volatile packets are dropped and
//! any other packet closes the session (`transport error`), logged with `reason=slow consumer`.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use actix::prelude::*;
use bytes::Bytes;
use bytestring::ByteString;
use serde_json::Value;
use tokio::sync::oneshot;

use super::messages::*;
use super::ws::{WsHandle, WsSendError};

/// How far past `FERRIO_SOCKET_BUFFER` a session's queue may grow while its client keeps
/// reading (the server is busy, the client is not slow).
const OVERLOAD_FACTOR: usize = 8;
use crate::protocol::engineio::{self, EioPacket};
use crate::protocol::socketio::{self, Decoded, Packet, PacketKind};
use crate::server::{EngineHandler, EngineSocket, Event, Shared, Socket};

type PollReply = oneshot::Sender<Result<String, PollError>>;

/// Where the session's packets travel now.
enum Transport {
    /// Opened by a WebSocket handshake; waiting for the transport to say it is up.
    AwaitingWs,
    /// HTTP long-polling, with the GET that waits for packets, if any.
    Polling { poll: Option<PollReply> },
    /// A WebSocket is being probed while polling still carries packets.
    Upgrading {
        poll: Option<PollReply>,
        ws: WsHandle,
        /// `2probe` was answered: polls now get a noop, frames wait for the WebSocket.
        probed: bool,
        /// The parked GET came after the WebSocket opened (not the long-poll that was already
        /// waiting): at the probe it is held a moment, since "5" may be on its way.
        late_poll: bool,
    },
    /// The WebSocket carries everything.
    WebSocket { ws: WsHandle },
}

impl Transport {
    /// The id of the WebSocket that may send frames to this session now.
    fn ws_id(&self) -> Option<u64> {
        match self {
            Transport::Upgrading { ws, .. } | Transport::WebSocket { ws } => Some(ws.id()),
            _ => None,
        }
    }
}

/// What the session serves on top of Engine.IO.
#[derive(Clone)]
pub enum Mode {
    /// Socket.IO: namespaces, events, acks, rooms.
    SocketIo,
    /// Raw Engine.IO messages handed to an application (the conformance echo).
    Engine(Arc<dyn EngineHandler>),
}

/// A server-to-client ack we are waiting for.
struct AckWaiter {
    socket: SocketId,
    reply: AckReply,
    timer: SpawnHandle,
}

/// Where an ack's answer goes.
enum AckReply {
    /// One waiter (`Socket::emit_with_ack`).
    Once(oneshot::Sender<Result<AckData, AckError>>),
    /// A collector of many sockets' answers (cluster broadcast with ack).
    Many(tokio::sync::mpsc::UnboundedSender<Result<AckData, AckError>>),
}

impl AckReply {
    fn send(self, result: Result<AckData, AckError>) {
        match self {
            AckReply::Once(tx) => {
                let _ = tx.send(result);
            }
            AckReply::Many(tx) => {
                let _ = tx.send(result);
            }
        }
    }
}

/// One Engine.IO session and the Socket.IO sockets it carries.
pub struct Session {
    sid: Sid,
    shared: Arc<Shared>,
    mode: Mode,
    transport: Transport,
    /// Frames waiting for a transport.
    queue: VecDeque<Frame>,
    /// Half-received binary packets.
    decoder: socketio::Decoder,
    /// Connected namespace sockets (few per session: a Vec beats a map).
    sockets: Vec<Socket>,
    acks: HashMap<u64, AckWaiter>,
    next_ack: u64,
    /// A ping is out and its pong has not come.
    awaiting_pong: bool,
    /// When the outstanding ping times out: requests arriving later find the session gone
    /// even if the timer has not fired yet (a loaded machine fires timers late).
    pong_deadline: Option<std::time::Instant>,
    /// When the session was opened: the first ping is due `pingInterval` after it.
    opened: std::time::Instant,
    heartbeat: Option<SpawnHandle>,
    handshake: Arc<HandshakeData>,
    /// Why the session ends; set once, by `close`.
    closing: Option<DisconnectReason>,
    /// Closed while polling with no GET parked: what the next GET gets (noop or close packet)
    /// before the actor stops.
    lingering: Option<&'static str>,
    /// A namespace CONNECT has succeeded: the connect timeout no longer applies, even once
    /// every namespace is left (Node clears its timer on the first CONNECT too).
    connected_once: bool,
    /// The WebSocket's queue is full: frames wait in `queue` until it has room.
    ws_blocked: bool,
    /// Bytes of the attachments received so far for the packet being reassembled.
    binary_bytes: usize,
}

/// Namespaces one connection may join at once (each costs a socket; prefix patterns would
/// otherwise let one client create namespaces without bound).
pub const MAX_NAMESPACES_PER_SESSION: usize = 32;

impl Session {
    /// A session that starts on long-polling (`websocket == false`) or on a WebSocket.
    pub fn new(
        sid: Sid,
        shared: Arc<Shared>,
        mode: Mode,
        websocket: bool,
        handshake: Arc<HandshakeData>,
    ) -> Self {
        Session {
            sid,
            shared,
            mode,
            transport: if websocket {
                Transport::AwaitingWs
            } else {
                Transport::Polling { poll: None }
            },
            queue: VecDeque::new(),
            decoder: socketio::Decoder::new(),
            sockets: Vec::new(),
            acks: HashMap::new(),
            next_ack: 0,
            awaiting_pong: false,
            pong_deadline: None,
            opened: std::time::Instant::now(),
            heartbeat: None,
            handshake,
            closing: None,
            lingering: None,
            connected_once: false,
            binary_bytes: 0,
            ws_blocked: false,
        }
    }

    /// Queues the Engine.IO open packet (for sessions opened over WebSocket).
    pub fn queue_open(&mut self, open: String) {
        self.queue.push_back(Frame::Text(ByteString::from(open)));
    }

    fn config(&self) -> &crate::config::Config {
        &self.shared.config
    }

    // -- heartbeat ---------------------------------------------------------------------------

    fn schedule_ping(&mut self, ctx: &mut Context<Self>) {
        let interval = self.config().ping_interval;
        self.schedule_ping_in(ctx, interval);
    }

    fn schedule_ping_in(&mut self, ctx: &mut Context<Self>, interval: std::time::Duration) {
        let h = ctx.run_later(interval, |act, ctx| act.send_ping(ctx));
        self.heartbeat = Some(h);
    }

    fn send_ping(&mut self, ctx: &mut Context<Self>) {
        self.awaiting_pong = true;
        let timeout = self.config().ping_timeout;
        self.pong_deadline = Some(std::time::Instant::now() + timeout);
        self.push_control(ctx, "2");
        let h = ctx.run_later(timeout, |act, ctx| {
            if act.awaiting_pong {
                act.close(ctx, DisconnectReason::PingTimeout, false);
            }
        });
        self.heartbeat = Some(h);
    }

    /// Releases a GET parked during the upgrade with a noop after [`UPGRADE_GRACE`], unless the
    /// upgrade completed meanwhile (then it got a 400).
    fn hold_late_poll(&mut self, ctx: &mut Context<Self>) {
        ctx.run_later(UPGRADE_GRACE, |act, _| {
            if let Transport::Upgrading { poll, .. } = &mut act.transport {
                if let Some(reply) = poll.take() {
                    let _ = reply.send(Ok("6".to_owned()));
                }
            }
        });
    }

    /// The outstanding ping's deadline has passed (its timer may not have fired yet).
    fn ping_overdue(&self) -> bool {
        self.awaiting_pong
            && self
                .pong_deadline
                .is_some_and(|d| std::time::Instant::now() >= d)
    }

    fn on_pong(&mut self, ctx: &mut Context<Self>) {
        if !self.awaiting_pong {
            return;
        }
        self.awaiting_pong = false;
        self.pong_deadline = None;
        if let Some(h) = self.heartbeat.take() {
            ctx.cancel_future(h);
        }
        self.schedule_ping(ctx);
    }

    // -- outbound ----------------------------------------------------------------------------

    /// Queues a control packet (ping, close) that must never be dropped.
    fn push_control(&mut self, ctx: &mut Context<Self>, text: &'static str) {
        self.queue
            .push_back(Frame::Text(ByteString::from_static(text)));
        self.flush(ctx);
    }

    /// Queues an encoded packet, applying the slow-consumer policy.
    fn push_packet(&mut self, ctx: &mut Context<Self>, packet: &Encoded, volatile: bool) {
        if self.closing.is_some() {
            return;
        }
        let limit = self.config().socket_buffer;
        let queued = self.queue.len() + packet.frames.len();
        if queued > limit {
            if volatile {
                return;
            }
            // Past the limit, a client that stopped reading is let go; a client that reads
            // but whose frames wait because the server is busy keeps them, up to a hard bound.
            if self.client_stalled() || queued > limit.saturating_mul(OVERLOAD_FACTOR) {
                log::warn!(
                    "slow consumer sid={} queued={} reason=closing",
                    self.sid,
                    self.queue.len()
                );
                self.close(ctx, DisconnectReason::TransportError, false);
                return;
            }
        }
        // The common case, a WebSocket with room: straight to it, nothing queued here.
        if let (true, false, Transport::WebSocket { ws }) =
            (self.queue.is_empty(), self.ws_blocked, &self.transport)
        {
            let mut frames = packet.frames.iter();
            for f in frames.by_ref() {
                match ws.try_send(f.clone()) {
                    Ok(()) => {}
                    Err((f, WsSendError::Full)) => {
                        self.queue.push_back(f);
                        break;
                    }
                    // The reader reports the close; nothing more can be written.
                    Err((_, WsSendError::Closed)) => return,
                }
            }
            self.queue.extend(frames.cloned());
        } else {
            self.queue.extend(packet.frames.iter().cloned());
        }
        self.flush(ctx);
    }

    /// Whether the client is not taking what is sent: a WebSocket whose socket is full, or a
    /// polling client that has no GET waiting.
    fn client_stalled(&self) -> bool {
        match &self.transport {
            Transport::WebSocket { ws } => ws.stalled(),
            _ => true,
        }
    }

    fn push_sio(&mut self, ctx: &mut Context<Self>, packet: &Packet, bins: Vec<Bytes>) {
        let enc = Encoded::new(packet, bins);
        self.push_packet(ctx, &enc, false);
    }

    /// Hands queued frames to whichever transport can take them now.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.queue.is_empty() {
            return;
        }
        match &mut self.transport {
            Transport::WebSocket { ws } => {
                if self.ws_blocked {
                    return;
                }
                while let Some(f) = self.queue.pop_front() {
                    match ws.try_send(f) {
                        Ok(()) => {}
                        Err((f, WsSendError::Full)) => {
                            // The client reads slowly: frames wait here (bounded by
                            // FERRIO_SOCKET_BUFFER) until the WebSocket takes more.
                            self.queue.push_front(f);
                            self.ws_blocked = true;
                            let ready = ws.ready();
                            ctx.spawn(ready.into_actor(self).map(|_, act, ctx| {
                                act.ws_blocked = false;
                                act.flush(ctx);
                            }));
                            return;
                        }
                        Err((_, WsSendError::Closed)) => {
                            // The reader reports the close; nothing more can be written.
                            self.queue.clear();
                            return;
                        }
                    }
                }
                // Drained: an idle session holds no queue memory.
                self.queue = VecDeque::new();
            }
            Transport::Polling { poll }
            | Transport::Upgrading {
                poll,
                probed: false,
                ..
            } => {
                if let Some(reply) = poll.take() {
                    let payload = encode_payload(&self.queue);
                    if reply.send(Ok(payload)).is_ok() {
                        self.queue.clear();
                    }
                    // A dropped GET (client went away) leaves the frames queued for the next.
                }
            }
            Transport::Upgrading { probed: true, .. } | Transport::AwaitingWs => {}
        }
    }

    /// Ends the session. `by_client` when the client asked (close packet): a parked poll then
    /// gets a noop instead of a close packet.
    fn close(&mut self, ctx: &mut Context<Self>, reason: DisconnectReason, by_client: bool) {
        if self.closing.is_some() {
            return;
        }
        self.closing = Some(reason);
        let transport = std::mem::replace(&mut self.transport, Transport::Polling { poll: None });
        match transport {
            Transport::Polling { poll: None } if by_client => {
                // The client closed with a POST while no GET was parked. Like Node, answer the
                // GET that is surely on its way with a noop before forgetting the sid. (A
                // server-side close forgets the sid at once, as Node does: a client that is
                // polling has a GET parked and gets the close packet on it.)
                self.release(reason);
                self.lingering = Some("6");
                ctx.run_later(CLOSE_LINGER, |_, ctx| ctx.stop());
                return;
            }
            Transport::Polling { poll } => release_poll(poll, by_client),
            Transport::Upgrading { poll, ws, .. } => {
                release_poll(poll, by_client);
                ws.close();
            }
            Transport::WebSocket { ws } => {
                // What fits goes out before the close; a slow reader is cut off.
                let mut cut = false;
                while let Some(f) = self.queue.pop_front() {
                    if ws.try_send(f).is_err() {
                        cut = true;
                        break;
                    }
                }
                if cut {
                    ws.abort();
                } else {
                    ws.close();
                }
            }
            Transport::AwaitingWs => {}
        }
        ctx.stop();
    }

    // -- inbound -----------------------------------------------------------------------------

    fn on_eio(&mut self, ctx: &mut Context<Self>, packet: EioPacket) {
        match packet {
            EioPacket::Pong(_) => self.on_pong(ctx),
            EioPacket::Close => self.close(ctx, DisconnectReason::TransportClose, true),
            EioPacket::Message(text) => self.on_text(ctx, &text),
            EioPacket::Binary(bin) => self.on_binary(ctx, bin),
            EioPacket::Ping(_) | EioPacket::Noop | EioPacket::Upgrade => {}
            EioPacket::Open(_) => self.close(ctx, DisconnectReason::ParseError, false),
        }
    }

    fn on_text(&mut self, ctx: &mut Context<Self>, text: &str) {
        if let Mode::Engine(app) = &self.mode {
            let app = app.clone();
            let socket = EngineSocket::new(ctx.address(), self.sid.clone());
            app.on_message(&socket, Frame::Text(ByteString::from(text)));
            return;
        }
        match self.decoder.feed_text(text) {
            Ok(Decoded::Packet(p, bins)) => self.on_sio(ctx, p, bins),
            Ok(Decoded::NeedMore) => {}
            Err(e) => {
                log::debug!("parse error sid={} error={:?}", self.sid, e);
                self.close(ctx, DisconnectReason::ParseError, false);
            }
        }
    }

    fn on_binary(&mut self, ctx: &mut Context<Self>, bin: Bytes) {
        if let Mode::Engine(app) = &self.mode {
            let app = app.clone();
            let socket = EngineSocket::new(ctx.address(), self.sid.clone());
            app.on_message(&socket, Frame::Binary(bin));
            return;
        }
        // A packet's attachments together may not exceed the payload limit either.
        self.binary_bytes += bin.len();
        if self.binary_bytes > self.shared.config.max_payload {
            log::info!("attachments over max payload sid={}", self.sid);
            return self.close(ctx, DisconnectReason::TransportError, false);
        }
        match self.decoder.feed_binary(bin) {
            Ok(Decoded::Packet(p, bins)) => {
                self.binary_bytes = 0;
                self.on_sio(ctx, p, bins)
            }
            Ok(Decoded::NeedMore) => {}
            Err(e) => {
                log::debug!("parse error sid={} error={:?}", self.sid, e);
                self.close(ctx, DisconnectReason::ParseError, false);
            }
        }
    }

    fn socket_index(&self, ns: &str) -> Option<usize> {
        self.sockets.iter().position(|s| s.ns() == ns)
    }

    fn on_sio(&mut self, ctx: &mut Context<Self>, p: Packet, bins: Vec<Bytes>) {
        match p.kind {
            PacketKind::Connect => self.on_connect(ctx, p),
            PacketKind::Disconnect => {
                if let Some(i) = self.socket_index(&p.ns) {
                    self.remove_socket(i, DisconnectReason::ClientNamespaceDisconnect);
                }
            }
            PacketKind::Event | PacketKind::BinaryEvent => {
                let Some(i) = self.socket_index(&p.ns) else {
                    log::debug!("event for unconnected ns sid={} ns={}", self.sid, p.ns);
                    return;
                };
                let socket = self.sockets[i].clone();
                let Some(Value::Array(mut data)) = p.data else {
                    return self.close(ctx, DisconnectReason::ParseError, false);
                };
                if data.is_empty() {
                    return self.close(ctx, DisconnectReason::ParseError, false);
                }
                let name = match data.remove(0) {
                    Value::String(s) => s,
                    _ => return self.close(ctx, DisconnectReason::ParseError, false),
                };
                let event = Event::new(name, data, bins, p.id, &socket);
                let app = self.shared.app.clone();
                app.on_event(&socket, event);
            }
            PacketKind::Ack | PacketKind::BinaryAck => {
                let Some(id) = p.id else {
                    return self.close(ctx, DisconnectReason::ParseError, false);
                };
                let args = match p.data {
                    Some(Value::Array(a)) => a,
                    _ => return self.close(ctx, DisconnectReason::ParseError, false),
                };
                match self.acks.remove(&id) {
                    Some(w)
                        if self.socket_index(&p.ns).map(|i| self.sockets[i].id())
                            == Some(&w.socket) =>
                    {
                        ctx.cancel_future(w.timer);
                        w.reply.send(Ok(AckData { args, bins }));
                    }
                    Some(w) => {
                        // Not this namespace's ack: put it back.
                        self.acks.insert(id, w);
                    }
                    None => log::debug!("unknown ack sid={} ack={}", self.sid, id),
                }
            }
            PacketKind::ConnectError => self.close(ctx, DisconnectReason::ParseError, false),
        }
    }

    fn on_connect(&mut self, ctx: &mut Context<Self>, p: Packet) {
        let ns = p.ns;
        if self.socket_index(&ns).is_some() {
            log::debug!("duplicate CONNECT sid={} ns={}", self.sid, ns);
            return;
        }
        if self.sockets.len() >= MAX_NAMESPACES_PER_SESSION {
            log::info!("too many namespaces sid={} ns={}", self.sid, ns);
            let packet = Packet::connect_error(&ns, "Too many namespaces on one connection");
            self.push_sio(ctx, &packet, Vec::new());
            return;
        }
        if !self.shared.config.namespace_allowed(&ns) {
            self.push_sio(
                ctx,
                &Packet::connect_error(&ns, "Invalid namespace"),
                Vec::new(),
            );
            return;
        }
        let auth = match p.data {
            Some(v @ Value::Object(_)) => v,
            Some(_) => return self.close(ctx, DisconnectReason::ParseError, false),
            None => Value::Object(Default::default()),
        };
        let app = self.shared.app.clone();
        if let Err(refusal) = app.authorize(&ns, &auth, &self.handshake) {
            let mut packet = Packet::connect_error(&ns, &refusal.message);
            if let (Some(data), Some(Value::Object(obj))) = (refusal.data, packet.data.as_mut()) {
                obj.insert("data".to_owned(), data);
            }
            self.push_sio(ctx, &packet, Vec::new());
            return;
        }
        let namespace = self.shared.namespace(&ns);
        let id = SocketId::from(engineio::generate_id());
        let info = Arc::new(SocketInfo {
            id: id.clone(),
            handshake: self.handshake.clone(),
            auth,
        });
        namespace.actor().do_send(AddSocket {
            id: id.clone(),
            conn: ctx.address().recipient(),
            info: info.clone(),
        });
        let socket = Socket::new(namespace, ctx.address(), self.sid.clone(), info);
        self.sockets.push(socket.clone());
        self.connected_once = true;
        self.push_sio(ctx, &Packet::connect_ok(&ns, id.as_str()), Vec::new());
        log::debug!("connect sid={} ns={} socket={}", self.sid, ns, id);
        app.on_connect(&socket);
    }

    /// Takes a namespace socket out: room actor, application. The one place a socket ends.
    fn remove_socket(&mut self, index: usize, reason: DisconnectReason) {
        let socket = self.sockets.swap_remove(index);
        socket.namespace().remove(socket.id());
        let stale: Vec<u64> = self
            .acks
            .iter()
            .filter(|(_, w)| &w.socket == socket.id())
            .map(|(k, _)| *k)
            .collect();
        for k in stale {
            if let Some(w) = self.acks.remove(&k) {
                w.reply.send(Err(AckError::Disconnected));
            }
        }
        log::debug!(
            "disconnect sid={} ns={} socket={} reason={}",
            self.sid,
            socket.ns(),
            socket.id(),
            reason
        );
        self.shared.app.on_disconnect(&socket, reason);
    }
}

impl Session {
    /// Takes every namespace socket out and fails pending acks. Idempotent.
    fn release(&mut self, reason: DisconnectReason) {
        while !self.sockets.is_empty() {
            self.remove_socket(self.sockets.len() - 1, reason);
        }
        for (_, w) in self.acks.drain() {
            w.reply.send(Err(AckError::Disconnected));
        }
    }
}

/// How long a GET that arrives between the probe and the upgrade packet is held: answered 400
/// if the upgrade completes meanwhile, else released with a noop.
const UPGRADE_GRACE: std::time::Duration = std::time::Duration::from_millis(100);

/// How long a session closed by the client over polling waits for the GET it will answer
/// with a noop (Node waits up to its transport close timeout).
const CLOSE_LINGER: std::time::Duration = std::time::Duration::from_millis(1000);

/// Answers a parked GET when the session ends: a noop when the client asked to close, else a
/// close packet.
fn release_poll(poll: Option<PollReply>, by_client: bool) {
    if let Some(reply) = poll {
        let _ = reply.send(Ok(if by_client { "6" } else { "1" }.to_owned()));
    }
}

/// Joins frames into a polling payload (`\x1e` between records, binary as `b`+base64).
fn encode_payload(frames: &VecDeque<Frame>) -> String {
    let mut out = String::new();
    for (i, f) in frames.iter().enumerate() {
        if i > 0 {
            out.push('\x1e');
        }
        match f {
            Frame::Text(t) => out.push_str(t),
            Frame::Binary(b) => out.push_str(&engineio::encode_text(&EioPacket::Binary(b.clone()))),
        }
    }
    out
}

impl Actor for Session {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.shared.config.socket_mailbox);
        let first = self
            .config()
            .ping_interval
            .saturating_sub(self.opened.elapsed());
        self.schedule_ping_in(ctx, first);
        match &self.mode {
            Mode::SocketIo => {
                let timeout = self.shared.config.connect_timeout;
                ctx.run_later(timeout, |act, ctx| {
                    if !act.connected_once {
                        log::debug!("no CONNECT in time sid={}", act.sid);
                        act.close(ctx, DisconnectReason::TransportClose, false);
                    }
                });
            }
            Mode::Engine(app) => {
                let socket = EngineSocket::new(ctx.address(), self.sid.clone());
                app.clone().on_open(&socket);
            }
        }
    }

    /// The one place a session's resources are released (`release` may have run earlier).
    fn stopped(&mut self, ctx: &mut Self::Context) {
        let reason = self.closing.unwrap_or(DisconnectReason::TransportClose);
        self.shared.remove_session(&self.sid);
        self.release(reason);
        if let Mode::Engine(app) = &self.mode {
            let socket = EngineSocket::new(ctx.address(), self.sid.clone());
            app.on_close(&socket, reason);
        }
        log::debug!("session closed sid={} reason={}", self.sid, reason);
    }
}

impl Handler<Poll> for Session {
    type Result = ();
    fn handle(&mut self, msg: Poll, ctx: &mut Context<Self>) {
        if let Some(last) = self.lingering {
            let _ = msg.reply.send(Ok(last.to_owned()));
            ctx.stop();
            return;
        }
        if self.ping_overdue() {
            self.close(ctx, DisconnectReason::PingTimeout, false);
        }
        if self.closing.is_some() {
            let _ = msg.reply.send(Err(PollError::UnknownSid));
            return;
        }
        match &mut self.transport {
            Transport::Polling { poll }
            | Transport::Upgrading {
                poll,
                probed: false,
                ..
            } => {
                if poll.as_ref().is_some_and(|p| !p.is_closed()) {
                    // Two concurrent GETs: refuse the second and end the session.
                    let _ = msg.reply.send(Err(PollError::BadRequest));
                    log::debug!("duplicate poll sid={}", self.sid);
                    self.close(ctx, DisconnectReason::TransportError, false);
                    return;
                }
                *poll = Some(msg.reply);
                if let Transport::Upgrading { late_poll, .. } = &mut self.transport {
                    *late_poll = true;
                }
                self.flush(ctx);
            }
            Transport::Upgrading {
                poll, probed: true, ..
            } => {
                // A GET after the probe: the client is finishing its upgrade. Hold it a moment:
                // if "5" comes, polling is over (400); if not, release it with a noop.
                if poll.is_some() {
                    let _ = msg.reply.send(Err(PollError::BadRequest));
                    return;
                }
                *poll = Some(msg.reply);
                self.hold_late_poll(ctx);
            }
            Transport::WebSocket { .. } | Transport::AwaitingWs => {
                let _ = msg.reply.send(Err(PollError::BadRequest));
            }
        }
    }
}

impl Handler<Post> for Session {
    type Result = Result<(), PollError>;
    fn handle(&mut self, msg: Post, ctx: &mut Context<Self>) -> Self::Result {
        if self.ping_overdue() {
            self.close(ctx, DisconnectReason::PingTimeout, false);
        }
        if self.closing.is_some() {
            return Err(PollError::UnknownSid);
        }
        if !matches!(
            self.transport,
            Transport::Polling { .. } | Transport::Upgrading { .. }
        ) {
            return Err(PollError::BadRequest);
        }
        let packets = match engineio::decode_payload(&msg.body) {
            Ok(p) => p,
            Err(e) => {
                log::debug!("bad payload sid={} error={:?}", self.sid, e);
                self.close(ctx, DisconnectReason::ParseError, false);
                return Err(PollError::BadRequest);
            }
        };
        for p in packets {
            if self.closing.is_some() {
                break;
            }
            self.on_eio(ctx, p);
        }
        Ok(())
    }
}

impl Handler<WsOpened> for Session {
    type Result = ();
    fn handle(&mut self, msg: WsOpened, ctx: &mut Context<Self>) {
        if self.closing.is_some() {
            msg.conn.close();
            return;
        }
        let transport = std::mem::replace(&mut self.transport, Transport::AwaitingWs);
        self.transport = match transport {
            Transport::AwaitingWs => Transport::WebSocket { ws: msg.conn },
            Transport::Polling { poll } => Transport::Upgrading {
                poll,
                ws: msg.conn,
                probed: false,
                late_poll: false,
            },
            other => {
                // Already upgrading or upgraded: a second WebSocket is refused.
                msg.conn.close();
                other
            }
        };
        self.flush(ctx);
    }
}

impl Handler<WsInbound> for Session {
    type Result = ();
    fn handle(&mut self, msg: WsInbound, ctx: &mut Context<Self>) {
        if self.closing.is_some() || self.transport.ws_id() != Some(msg.id) {
            return;
        }
        if let Transport::Upgrading { ws, probed, .. } = &mut self.transport {
            match &msg.frame {
                Frame::Text(t) if t == "2probe" => {
                    let _ = ws.try_send(Frame::Text(ByteString::from_static("3probe")));
                    *probed = true;
                    let transport = std::mem::replace(&mut self.transport, Transport::AwaitingWs);
                    if let Transport::Upgrading {
                        mut poll,
                        ws,
                        late_poll,
                        ..
                    } = transport
                    {
                        // The long-poll that was waiting is released at once: the client waits
                        // for it before it sends "5". A GET that came during the upgrade may be
                        // a client racing its own "5": hold it a moment.
                        if !late_poll {
                            if let Some(reply) = poll.take() {
                                let _ = reply.send(Ok("6".to_owned()));
                            }
                        }
                        let held = poll.is_some();
                        self.transport = Transport::Upgrading {
                            poll,
                            ws,
                            probed: true,
                            late_poll,
                        };
                        if held {
                            self.hold_late_poll(ctx);
                        }
                    }
                }
                Frame::Text(t) if t == "5" && *probed => {
                    let transport = std::mem::replace(&mut self.transport, Transport::AwaitingWs);
                    if let Transport::Upgrading { ws, poll, .. } = transport {
                        log::debug!("upgraded sid={}", self.sid);
                        if let Some(reply) = poll {
                            // Polling is over for this session. The refusal waits a moment so
                            // that "3probe", already handed to the WebSocket, reaches the
                            // client first, as it would from a single-threaded server.
                            ctx.run_later(std::time::Duration::from_millis(20), move |_, _| {
                                let _ = reply.send(Err(PollError::BadRequest));
                            });
                        }
                        self.transport = Transport::WebSocket { ws };
                    }
                    self.flush(ctx);
                }
                _ => log::debug!("frame before upgrade ignored sid={}", self.sid),
            }
            return;
        }
        match msg.frame {
            Frame::Text(t) => match engineio::decode_text(&t) {
                Ok(p) => self.on_eio(ctx, p),
                Err(e) => {
                    log::debug!("bad frame sid={} error={:?}", self.sid, e);
                    self.close(ctx, DisconnectReason::ParseError, false);
                }
            },
            Frame::Binary(b) => self.on_eio(ctx, EioPacket::Binary(b)),
        }
    }
}

impl Handler<WsClosed> for Session {
    type Result = ();
    fn handle(&mut self, msg: WsClosed, ctx: &mut Context<Self>) {
        if self.transport.ws_id() != Some(msg.id) {
            return;
        }
        match std::mem::replace(&mut self.transport, Transport::AwaitingWs) {
            Transport::Upgrading { poll, .. } => {
                // The probe failed: keep polling.
                self.transport = Transport::Polling { poll };
            }
            other => {
                self.transport = other;
                let reason = if msg.error {
                    DisconnectReason::TransportError
                } else {
                    DisconnectReason::TransportClose
                };
                // The WebSocket is gone: nothing to flush, nobody to tell.
                if self.closing.is_none() {
                    self.closing = Some(reason);
                    ctx.stop();
                }
            }
        }
    }
}

impl Handler<ToSocket> for Session {
    type Result = ();
    fn handle(&mut self, msg: ToSocket, ctx: &mut Context<Self>) {
        match msg {
            ToSocket::Deliver { packet, volatile } => self.push_packet(ctx, &packet, volatile),
            ToSocket::Disconnect { id, reason } => {
                if let Some(i) = self.sockets.iter().position(|s| s.id() == &id) {
                    let ns = self.sockets[i].ns().to_owned();
                    self.push_sio(ctx, &Packet::disconnect(&ns), Vec::new());
                    self.remove_socket(i, reason);
                }
            }
            ToSocket::Close { reason } => self.close(ctx, reason, false),
            ToSocket::DeliverWithAck {
                id,
                data,
                bins,
                timeout,
                acks,
            } => self.emit_with_ack(ctx, id, data, bins, timeout, AckReply::Many(acks)),
        }
    }
}

impl Session {
    /// Sends `data` (`[event, ...args]`) to socket `id` with a fresh ack id and waits for the
    /// answer up to `timeout`.
    fn emit_with_ack(
        &mut self,
        ctx: &mut Context<Self>,
        id: SocketId,
        data: Vec<Value>,
        bins: Vec<Bytes>,
        timeout: std::time::Duration,
        reply: AckReply,
    ) {
        let Some(i) = self.sockets.iter().position(|s| s.id() == &id) else {
            reply.send(Err(AckError::Disconnected));
            return;
        };
        let ns = self.sockets[i].ns().to_owned();
        let ack_id = self.next_ack;
        self.next_ack += 1;
        let packet = Packet::event(&ns, data, Some(ack_id), bins.len());
        let timer = ctx.run_later(timeout, move |act, _| {
            if let Some(w) = act.acks.remove(&ack_id) {
                w.reply.send(Err(AckError::Timeout));
            }
        });
        self.acks.insert(
            ack_id,
            AckWaiter {
                socket: id,
                reply,
                timer,
            },
        );
        self.push_sio(ctx, &packet, bins);
    }
}

impl Handler<EmitWithAck> for Session {
    type Result = ();
    fn handle(&mut self, msg: EmitWithAck, ctx: &mut Context<Self>) {
        let mut data = Vec::with_capacity(msg.args.len() + 1);
        data.push(Value::String(msg.event));
        data.extend(msg.args);
        let reply = AckReply::Once(msg.reply);
        self.emit_with_ack(ctx, msg.id, data, msg.bins, msg.timeout, reply);
    }
}

impl Handler<SendAck> for Session {
    type Result = ();
    fn handle(&mut self, msg: SendAck, ctx: &mut Context<Self>) {
        let Some(s) = self.sockets.iter().find(|s| s.id() == &msg.id) else {
            return;
        };
        let ns = s.ns().to_owned();
        let packet = Packet::ack(&ns, msg.args, msg.ack_id, msg.bins.len());
        self.push_sio(ctx, &packet, msg.bins);
    }
}

impl Handler<EngineSend> for Session {
    type Result = ();
    fn handle(&mut self, msg: EngineSend, ctx: &mut Context<Self>) {
        let frame = match msg.frame {
            Frame::Text(t) => Frame::Text(ByteString::from(engineio::encode_text(
                &EioPacket::Message(t.to_string()),
            ))),
            bin => bin,
        };
        let enc = Encoded {
            frames: vec![frame],
        };
        self.push_packet(ctx, &enc, false);
    }
}

/// Asks a session to close (server shutdown, `Socket::close_session`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct CloseSession {
    pub reason: DisconnectReason,
}

impl Handler<CloseSession> for Session {
    type Result = ();
    fn handle(&mut self, msg: CloseSession, ctx: &mut Context<Self>) {
        self.close(ctx, msg.reason, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polling_payload_joins_text_and_base64_binary_with_record_separator() {
        let mut q = VecDeque::new();
        q.push_back(Frame::Text(ByteString::from_static("4hello")));
        q.push_back(Frame::Binary(Bytes::from_static(&[1, 2, 3, 4])));
        assert_eq!(encode_payload(&q), "4hello\x1ebAQIDBA==");
    }
}
