//! Every message exchanged between ferrio's actors, with its reply type.
//!
//! Ids are newtypes over `Arc<str>` so that cloning one into a room index or a message is a
//! reference-count increment, never a string copy. Outbound packets travel as [`Encoded`]: a
//! packet is encoded once (text frame with its Engine.IO `4` prefix plus binary attachments) and
//! the same `Arc` is handed to every recipient.

use std::fmt;
use std::sync::Arc;

use actix::prelude::*;
use bytes::Bytes;
use bytestring::ByteString;
use serde_json::Value;

use crate::protocol::socketio::{self, Packet};

macro_rules! id_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub Arc<str>);

        impl $name {
            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), &*self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(Arc::from(s))
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                $name(Arc::from(s))
            }
        }
    };
}

id_newtype!(
    /// An Engine.IO session id (20 characters of base64url).
    Sid
);
id_newtype!(
    /// A Socket.IO socket id: one per namespace connection, also the name of the socket's own room.
    SocketId
);
id_newtype!(
    /// A room name inside one namespace.
    Room
);
id_newtype!(
    /// The name of a ferrio node in a cluster.
    NodeId
);

/// One WebSocket frame (or one record of a polling payload).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// A text Engine.IO packet, type digit included (`4…`, `2`, `6`).
    Text(ByteString),
    /// A binary Engine.IO message (a Socket.IO attachment).
    Binary(Bytes),
}

/// A Socket.IO packet encoded once for any number of recipients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// The text frame followed by the binary attachments, in order.
    pub frames: Vec<Frame>,
}

impl Encoded {
    /// Encodes a Socket.IO packet and its attachments as Engine.IO frames.
    pub fn new(packet: &Packet, bins: Vec<Bytes>) -> Arc<Encoded> {
        let mut text = String::with_capacity(64);
        text.push('4');
        text.push_str(&socketio::encode(packet));
        let mut frames = Vec::with_capacity(1 + bins.len());
        frames.push(Frame::Text(ByteString::from(text)));
        frames.extend(bins.into_iter().map(Frame::Binary));
        Arc::new(Encoded { frames })
    }

    /// An EVENT (or BINARY_EVENT) packet `event(...args)` in namespace `ns`.
    pub fn event(ns: &str, event: &str, args: Vec<Value>, bins: Vec<Bytes>) -> Arc<Encoded> {
        let mut data = Vec::with_capacity(args.len() + 1);
        data.push(Value::String(event.to_owned()));
        data.extend(args);
        let attachments = bins.len();
        Encoded::new(&Packet::event(ns, data, None, attachments), bins)
    }

    /// Size in bytes of every frame, for logging and limits.
    pub fn len(&self) -> usize {
        self.frames
            .iter()
            .map(|f| match f {
                Frame::Text(t) => t.len(),
                Frame::Binary(b) => b.len(),
            })
            .sum()
    }

    /// True when there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }
}

/// Why a namespace socket or a whole session ended, as applications see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DisconnectReason {
    /// The client sent a DISCONNECT packet for the namespace.
    ClientNamespaceDisconnect,
    /// The server disconnected the namespace socket (`socket.disconnect()`, or
    /// `disconnectSockets` from any node or an emitter). The client sees `io server disconnect`.
    ServerNamespaceDisconnect,
    /// The client did not answer a ping within `pingTimeout`.
    PingTimeout,
    /// The transport was closed (client went away, close packet, WebSocket closed).
    TransportClose,
    /// The transport failed (WebSocket protocol error, oversize message, slow consumer).
    TransportError,
    /// The client sent something that does not parse.
    ParseError,
    /// The server is stopping.
    ServerShuttingDown,
    /// The server closed the whole Engine.IO session.
    ForcedClose,
}

impl DisconnectReason {
    /// The string Node.js socket.io uses for this reason.
    pub fn as_str(self) -> &'static str {
        match self {
            DisconnectReason::ClientNamespaceDisconnect => "client namespace disconnect",
            DisconnectReason::ServerNamespaceDisconnect => "server namespace disconnect",
            DisconnectReason::PingTimeout => "ping timeout",
            DisconnectReason::TransportClose => "transport close",
            DisconnectReason::TransportError => "transport error",
            DisconnectReason::ParseError => "parse error",
            DisconnectReason::ServerShuttingDown => "server shutting down",
            DisconnectReason::ForcedClose => "forced close",
        }
    }
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// ---------------------------------------------------------------------------------------------
// Room actor -> socket actor
// ---------------------------------------------------------------------------------------------

/// What a room actor (or anyone holding the socket's `Recipient`) asks of a socket actor.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub enum ToSocket {
    /// Send an encoded packet. `volatile` packets may be dropped when the client is slow.
    Deliver {
        packet: Arc<Encoded>,
        volatile: bool,
    },
    /// Disconnect the namespace socket `id` (the session stays open for other namespaces).
    Disconnect {
        id: SocketId,
        reason: DisconnectReason,
    },
    /// Close the whole Engine.IO session.
    Close { reason: DisconnectReason },
    /// Send `data` (`[event, ...args]`) to socket `id` with an ack id; every answer (or its
    /// failure) goes to `acks`.
    DeliverWithAck {
        id: SocketId,
        data: Vec<Value>,
        bins: Vec<Bytes>,
        timeout: std::time::Duration,
        acks: tokio::sync::mpsc::UnboundedSender<Result<AckData, AckError>>,
    },
}

/// Delivers `data` to the target sockets with acks (a cluster broadcast with ack); replies
/// how many sockets it went to, so the requester knows how many acks to expect.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct BroadcastWithAck {
    pub target: Target,
    pub data: Vec<Value>,
    pub bins: Vec<Bytes>,
    pub timeout: std::time::Duration,
    pub acks: tokio::sync::mpsc::UnboundedSender<Result<AckData, AckError>>,
}

// ---------------------------------------------------------------------------------------------
// Socket actor -> room actor, and the public API -> room actor
// ---------------------------------------------------------------------------------------------

/// Registers a freshly connected namespace socket; it joins its own-id room.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AddSocket {
    pub id: SocketId,
    pub conn: Recipient<ToSocket>,
    /// What `fetchSockets` reports about this socket.
    pub info: Arc<SocketInfo>,
}

/// Removes a socket from every room (it disconnected).
#[derive(Message)]
#[rtype(result = "()")]
pub struct RemoveSocket {
    pub id: SocketId,
}

/// Why joining a room was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinError {
    /// The socket is not (or no longer) connected to the namespace.
    UnknownSocket,
    /// The room name is the id of another socket.
    RoomIsSocketId,
    /// The socket is already in `MAX_ROOMS_PER_SOCKET` rooms.
    TooManyRooms,
}

/// Makes socket `id` a member of `room`. Replies with the room's size afterwards.
#[derive(Message)]
#[rtype(result = "Result<JoinOutcome, JoinError>")]
pub struct Join {
    pub id: SocketId,
    pub room: Room,
}

/// The result of a join or a leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinOutcome {
    /// Members of the room on this node after the change.
    pub size: usize,
    /// False when nothing changed (already a member / not a member).
    pub changed: bool,
}

/// Removes socket `id` from `room`. Replies with the room's size afterwards.
#[derive(Message)]
#[rtype(result = "JoinOutcome")]
pub struct Leave {
    pub id: SocketId,
    pub room: Room,
}

/// Which sockets of a namespace an operation is for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    /// Sockets in any of these rooms; every socket of the namespace when empty.
    pub rooms: Vec<Room>,
    /// Minus the sockets in any of these rooms (a socket id is a room).
    pub except: Vec<Room>,
    /// True when the names in `rooms` are only rooms, never socket ids (hub clients may not
    /// address a socket through its own-id room).
    pub rooms_only: bool,
}

/// A broadcast whose room names (in `rooms_only` mode) include the id of a connected socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomIsSocketId;

/// Delivers an encoded packet to the target sockets of this node, each at most once; replies
/// how many it went to.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<usize, RoomIsSocketId>")]
pub struct Broadcast {
    pub target: Target,
    pub packet: Arc<Encoded>,
    pub volatile: bool,
    /// False when the broadcast came from another node: never publish it again.
    pub local_origin: bool,
}

/// The rooms of the namespace with their sizes (socket-id rooms left out).
#[derive(Message)]
#[rtype(result = "Vec<(Room, usize)>")]
pub struct ListRooms;

/// The socket ids in a room.
#[derive(Message)]
#[rtype(result = "Vec<SocketId>")]
pub struct RoomMembers {
    pub room: Room,
}

/// Every member leaves `room`; each first receives `notice` when one is given.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct DeleteRoom {
    pub room: Room,
    pub notice: Option<Arc<Encoded>>,
}

/// The target sockets join `rooms` (cluster `socketsJoin`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SocketsJoin {
    pub target: Target,
    pub rooms: Vec<Room>,
}

/// The target sockets leave `rooms` (cluster `socketsLeave`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SocketsLeave {
    pub target: Target,
    pub rooms: Vec<Room>,
}

/// The target sockets are disconnected; `close` closes their whole Engine.IO session.
#[derive(Message)]
#[rtype(result = "()")]
pub struct DisconnectSockets {
    pub target: Target,
    pub close: bool,
}

/// What `fetchSockets` tells about a socket.
#[derive(Debug, Clone)]
pub struct SocketInfo {
    pub id: SocketId,
    /// The session's handshake, shared by its namespace sockets.
    pub handshake: Arc<HandshakeData>,
    /// The CONNECT payload of this namespace socket (`{}` when none).
    pub auth: Value,
}

/// A snapshot of the target sockets: info, rooms.
#[derive(Message)]
#[rtype(result = "Vec<(Arc<SocketInfo>, Vec<Room>)>")]
pub struct FetchSockets {
    pub target: Target,
}

/// How a socket came to leave a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaveCause {
    /// It asked to leave (or was made to by `socketsLeave`).
    Leave,
    /// It disconnected.
    Disconnect,
    /// The room was deleted.
    Deleted,
}

/// Room lifecycle as announced by a room actor (to the application and, in a cluster, to the
/// Redis bridge, which mirrors it on other nodes). Socket-id rooms are never announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomEvent {
    Created {
        room: Room,
    },
    Deleted {
        room: Room,
    },
    Joined {
        room: Room,
        id: SocketId,
    },
    Left {
        room: Room,
        id: SocketId,
        cause: LeaveCause,
    },
}

/// A room lifecycle event of namespace `ns`, for listeners outside the room actor.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct RoomLifecycle {
    pub ns: Arc<str>,
    pub event: RoomEvent,
}

/// What the server knows of the HTTP request that opened a session (socket.io's
/// `socket.handshake`). Kept as plain strings, turned into JSON only when asked.
#[derive(Debug, Clone, Default)]
pub struct HandshakeData {
    /// Request headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The query string's pairs.
    pub query: Vec<(String, String)>,
    /// The peer address.
    pub address: String,
    /// The request URL (path and query).
    pub url: String,
    /// Milliseconds since the Unix epoch when the session opened.
    pub issued: u64,
    /// True when the request came with an `Origin` header.
    pub xdomain: bool,
    /// True for TLS connections.
    pub secure: bool,
}

impl HandshakeData {
    /// The handshake object socket.io reports in `fetchSockets`, with this socket's `auth`.
    pub fn to_json(&self, auth: &Value) -> Value {
        let obj = |pairs: &[(String, String)]| {
            Value::Object(
                pairs
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect(),
            )
        };
        serde_json::json!({
            "headers": obj(&self.headers),
            "time": crate::protocol::cluster::js_date_string(self.issued as i64),
            "address": self.address,
            "xdomain": self.xdomain,
            "secure": self.secure,
            "issued": self.issued,
            "url": self.url,
            "query": obj(&self.query),
            "auth": auth,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Transports and the public API -> socket actor
// ---------------------------------------------------------------------------------------------

/// A WebSocket for this session has opened (a fresh session's, or an upgrade candidate).
#[derive(Message)]
#[rtype(result = "()")]
pub struct WsOpened {
    pub conn: super::ws::WsHandle,
    pub id: u64,
}

/// A frame read from WebSocket `id`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct WsInbound {
    pub id: u64,
    pub frame: Frame,
}

/// WebSocket `id` closed; `error` when it failed (protocol error, oversize message).
#[derive(Message)]
#[rtype(result = "()")]
pub struct WsClosed {
    pub id: u64,
    pub error: bool,
}

/// Why a polling request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollError {
    /// The request does not fit the session's state (HTTP 400, code 3).
    BadRequest,
    /// The session is gone (HTTP 400, code 1).
    UnknownSid,
}

/// A long-polling GET: the reply carries the payload once there is one.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Poll {
    pub reply: tokio::sync::oneshot::Sender<Result<String, PollError>>,
}

/// A polling POST body (already checked against `maxPayload`).
#[derive(Message)]
#[rtype(result = "Result<(), PollError>")]
pub struct Post {
    pub body: Bytes,
}

/// Why an acknowledgement never came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckError {
    /// No answer within the timeout.
    Timeout,
    /// The socket or its session went away first.
    Disconnected,
}

impl fmt::Display for AckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AckError::Timeout => "timeout",
            AckError::Disconnected => "disconnected",
        })
    }
}

/// Arguments of an acknowledgement (binary values as placeholders into `bins`).
#[derive(Debug, Clone, PartialEq)]
pub struct AckData {
    pub args: Vec<Value>,
    pub bins: Vec<Bytes>,
}

/// Emit `event` to socket `id` of this session and wait for the client's ack.
#[derive(Message)]
#[rtype(result = "()")]
pub struct EmitWithAck {
    pub id: SocketId,
    pub event: String,
    pub args: Vec<Value>,
    pub bins: Vec<Bytes>,
    pub timeout: std::time::Duration,
    pub reply: tokio::sync::oneshot::Sender<Result<AckData, AckError>>,
}

/// Answer the client's ack `ack_id` on socket `id`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SendAck {
    pub id: SocketId,
    pub ack_id: u64,
    pub args: Vec<Value>,
    pub bins: Vec<Bytes>,
}

/// Raw Engine.IO mode: send one message.
#[derive(Message)]
#[rtype(result = "()")]
pub struct EngineSend {
    pub frame: Frame,
}
