//! Cluster wire codec: every byte ferrio puts on Redis or reads from it.
//!
//! This module owns four things, and nothing else:
//!
//! 1. **Channel names** ([`ChannelNames`], [`Channel`]): how the classic
//!    `@socket.io/redis-adapter` 8.x names its pub/sub channels, plus ferrio's own room-mirror
//!    channel, built by one function and parsed back.
//! 2. **Broadcasts** ([`BroadcastMessage`]): the notepack-msgpack array `[uid, packet, opts]`
//!    that Node nodes and `@socket.io/redis-emitter` 5.x publish, with binary arguments turned
//!    into Socket.IO attachments ([`EventData`]) and back.
//! 3. **Requests and replies** ([`Request`], [`Response`]): the classic `RequestType` 0–9
//!    protocol on `<prefix>-request#<nsp>#` and `<prefix>-response#<nsp>#…`, JSON or msgpack
//!    exactly as Node writes them.
//! 4. **The room mirror** ([`MirrorMessage`]): ferrio-only JSON messages that keep every ferrio
//!    node's view of the rooms on the other ferrio nodes.
//!
//! It is pure: bytes in, typed values out, and back. It knows nothing of Redis connections,
//! actors or timers; the Redis bridge calls it. Decoders never panic: malformed or unknown
//! input is a [`ClusterError`] the bridge logs and drops, as Node does.
//!
//! The facts encoded here come from `protocol/redis-adapter.md` (beside the repository) and
//! the captures in `protocol/samples/classic*`, which are the test vectors at the bottom.
//!
//! # Msgpack rules (notepack.io 3.x)
//!
//! Node encodes with notepack.io, so the encoder here writes what notepack writes: maps with
//! string keys in insertion order, integers in their smallest form (fixint, `uint8…64`,
//! `int8…64`), every other number as float64 (never float32), strings as fixstr/str8/16/32,
//! binary as bin8/16/32. A float that holds an integral value is written as an integer, since
//! a JavaScript number cannot tell the two apart. When decoding, the notepack extension types
//! are understood too: timestamp (type −1) becomes the ISO-8601 string `JSON.stringify` would
//! give the `Date`, the legacy type-0 forms become `undefined` / a date / binary, and any other
//! extension becomes `[type, <binary>]`, as notepack returns it.
//!
//! # A broadcast with acknowledgements across nodes (wire view)
//!
//! ```text
//!  node A (requester, uid FoGlaV)        Redis                     node B (any member)
//!   | PUBLISH <p>-request#/#  msgpack {uid, requestId, type:7, packet, opts}  |
//!   |------------------------------------->|------------------------------------->|
//!   |                                      |   JSON {type:8, requestId, clientCount}
//!   |<-------------------------------------|<-------------------------------------| once, even 0
//!   |                                      |   msgpack {type:9, requestId, packet}
//!   |<-------------------------------------|<-------------------------------------| per client ack
//! ```
//!
//! Replies go to `<p>-response#<nsp>#`, or to `<p>-response#<nsp>#<requesterUid>#` when the
//! responder was configured with `publishOnSpecificResponseChannel` (the requester listens on
//! both). The server-side-emit acknowledgement always uses the shared channel.

use std::collections::HashSet;
use std::fmt;

use bytes::Bytes;
use rmpv::Value as Mp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};

/// Channel prefix used when none is configured (the Node adapter's `key` default).
pub const DEFAULT_PREFIX: &str = "socket.io";

/// The `uid` `@socket.io/redis-emitter` puts on its broadcasts and server-side emits.
///
/// A ferrio node must never use it as its own uid: receivers would take ferrio's broadcasts
/// for the emitter's and vice versa.
pub const EMITTER_UID: &str = "emitter";

/// Version written in the `v` field of every [`MirrorMessage`]. Decoding refuses others.
pub const MIRROR_VERSION: u64 = 1;

/// Deepest nesting of arrays/maps accepted in a payload (the limit `serde_json` also applies
/// when parsing text). Deeper input is [`ClusterError::TooDeep`], not a stack overflow.
pub const MAX_NESTING: usize = 128;

/// Socket.IO packet type EVENT. Node broadcasts always carry it, binary arguments or not:
/// the switch to BINARY_EVENT happens later, in the Socket.IO encoder.
pub const PACKET_TYPE_EVENT: u8 = 2;

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Why a cluster payload or channel name could not be decoded or encoded.
///
/// Each variant names the field (a dotted path such as `opts.rooms`) when there is one, so
/// that a log line says what was wrong without dumping the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterError {
    /// The payload had no bytes at all.
    Empty,
    /// The bytes are not one valid msgpack value (truncated, bad length, bad marker).
    Msgpack {
        /// What the msgpack reader reported.
        reason: String,
    },
    /// A complete msgpack value was followed by more bytes; notepack refuses this too.
    TrailingBytes {
        /// How many bytes were left over.
        count: usize,
    },
    /// A payload starting with `{` is not valid JSON.
    Json {
        /// What the JSON parser reported.
        reason: String,
    },
    /// Arrays or maps nested deeper than [`MAX_NESTING`].
    TooDeep,
    /// A msgpack string is not valid UTF-8.
    InvalidUtf8,
    /// A msgpack map key that has no JavaScript property-name form (an array, map or binary).
    UnsupportedKey,
    /// A required field is absent.
    MissingField {
        /// Dotted path of the field.
        field: &'static str,
    },
    /// A field has a type the protocol never uses there.
    WrongType {
        /// Dotted path of the field.
        field: &'static str,
        /// What was expected, in words.
        expected: &'static str,
    },
    /// Binary data where the protocol only carries plain JSON values.
    UnexpectedBinary {
        /// Dotted path of the field.
        field: &'static str,
    },
    /// A `{"_placeholder":true,"num":N}` object that does not name an existing attachment.
    BadPlaceholder {
        /// The `num` found, if it was a non-negative integer.
        num: Option<u64>,
        /// How many attachments there are.
        attachments: usize,
    },
    /// The `type` of a request is not one of the request types 0–7.
    UnknownRequestType {
        /// The type number received.
        code: i64,
    },
    /// The `type` of a reply is not 6, 8 or 9 (typed replies) and the reply has no known shape.
    UnknownResponseType {
        /// The type number received.
        code: i64,
    },
    /// A mirror message carries a `v` this build does not speak.
    UnsupportedMirrorVersion {
        /// The version received.
        version: u64,
    },
    /// A mirror message has a `type` this build does not know.
    UnknownMirrorType {
        /// The type received.
        name: String,
    },
    /// A mirror message of a known type lacks a field or has one of the wrong type.
    InvalidMirror {
        /// What the decoder reported.
        reason: String,
    },
    /// A channel name that no channel of this prefix has.
    ForeignChannel {
        /// The channel received.
        channel: String,
    },
    /// Serialising failed (only possible for values that cannot be written, e.g. huge lengths).
    Encode {
        /// What the writer reported.
        reason: String,
    },
}

impl fmt::Display for ClusterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => write!(f, "empty payload"),
            Self::Msgpack { reason } => write!(f, "invalid msgpack: {reason}"),
            Self::TrailingBytes { count } => {
                write!(f, "{count} trailing bytes after msgpack value")
            }
            Self::Json { reason } => write!(f, "invalid JSON: {reason}"),
            Self::TooDeep => write!(f, "nesting deeper than {MAX_NESTING}"),
            Self::InvalidUtf8 => write!(f, "string is not valid UTF-8"),
            Self::UnsupportedKey => write!(f, "map key is not a string or scalar"),
            Self::MissingField { field } => write!(f, "missing field {field}"),
            Self::WrongType { field, expected } => write!(f, "field {field}: expected {expected}"),
            Self::UnexpectedBinary { field } => write!(f, "field {field}: unexpected binary"),
            Self::BadPlaceholder { num, attachments } => match num {
                Some(n) => write!(
                    f,
                    "placeholder {n} out of range ({attachments} attachments)"
                ),
                None => write!(f, "malformed placeholder ({attachments} attachments)"),
            },
            Self::UnknownRequestType { code } => write!(f, "unknown request type {code}"),
            Self::UnknownResponseType { code } => write!(f, "unknown response type {code}"),
            Self::UnsupportedMirrorVersion { version } => {
                write!(f, "unsupported mirror version {version}")
            }
            Self::UnknownMirrorType { name } => write!(f, "unknown mirror message type {name:?}"),
            Self::InvalidMirror { reason } => write!(f, "invalid mirror message: {reason}"),
            Self::ForeignChannel { channel } => write!(f, "not a cluster channel: {channel:?}"),
            Self::Encode { reason } => write!(f, "cannot encode: {reason}"),
        }
    }
}

impl std::error::Error for ClusterError {}

// ---------------------------------------------------------------------------------------------
// Channels
// ---------------------------------------------------------------------------------------------

/// What a Redis channel is for. Built by [`ChannelNames`], recovered by [`ChannelNames::parse`].
///
/// # Format
///
/// With prefix `p` (default `socket.io`) and namespace `nsp` (starts with `/`):
///
/// | kind | channel | subscribed with |
/// |---|---|---|
/// | broadcast, 0 or ≥ 2 rooms | `p#nsp#` | `PSUBSCRIBE p#nsp#*` |
/// | broadcast, exactly 1 room | `p#nsp#room#` | the same pattern |
/// | requests | `p-request#nsp#` | `SUBSCRIBE` (exactly once per node: it is the member count) |
/// | replies, shared | `p-response#nsp#` | `SUBSCRIBE` |
/// | replies, to one requester | `p-response#nsp#uid#` | `SUBSCRIBE` (own uid) |
/// | ferrio room mirror | `p-ferrio#` | `SUBSCRIBE` (ferrio nodes only) |
///
/// The mirror channel is one per cluster, not per namespace: its messages name their
/// namespace, and a node announces the namespaces it serves in its hello/heartbeat. The name
/// is chosen so that Node nodes never see it: the Node adapter only `SUBSCRIBE`s
/// `p-request#…`/`p-response#…` names exactly and `PSUBSCRIBE`s `p#<nsp>#*`, and a pattern
/// that starts with the literal `p#` cannot match a channel that has `-` right after `p`. It
/// is not one of the request channels either, so it does not change `PUBSUB NUMSUB` (the
/// member count Node requesters wait for). Only a Node deployment whose own `key` is
/// literally `p-ferrio` (or a key containing glob characters) could collide.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Channel {
    /// Broadcasts of a namespace; `room` is set on the one-room form.
    Broadcast {
        /// Namespace, e.g. `/` or `/admin`.
        nsp: String,
        /// The single room named by the channel, if any.
        room: Option<String>,
    },
    /// Requests of a namespace (every member receives every request, its own included).
    Request {
        /// Namespace.
        nsp: String,
    },
    /// Replies of a namespace; `uid` is set on the requester-specific form.
    Response {
        /// Namespace.
        nsp: String,
        /// Adapter uid of the requester the reply is addressed to, if any.
        uid: Option<String>,
    },
    /// ferrio's room mirror (all namespaces).
    Mirror,
}

/// Builds and parses the channel names of one prefix. The only code that spells a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelNames {
    /// The configured prefix (`FERRIO_REDIS_PREFIX`, the Node adapter's `key`).
    prefix: String,
}

impl Default for ChannelNames {
    fn default() -> Self {
        Self::new(DEFAULT_PREFIX)
    }
}

/// Suffix after the prefix that introduces each channel kind.
const KIND_BROADCAST: &str = "#";
const KIND_REQUEST: &str = "-request#";
const KIND_RESPONSE: &str = "-response#";
const KIND_MIRROR: &str = "-ferrio#";

impl ChannelNames {
    /// Channel names under `prefix`.
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// The prefix these names are built on.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The name of `channel`. Every other builder goes through here.
    pub fn name(&self, channel: &Channel) -> String {
        match channel {
            Channel::Broadcast { nsp, room } => {
                self.compose(KIND_BROADCAST, Some(nsp), room.as_deref())
            }
            Channel::Request { nsp } => self.compose(KIND_REQUEST, Some(nsp), None),
            Channel::Response { nsp, uid } => {
                self.compose(KIND_RESPONSE, Some(nsp), uid.as_deref())
            }
            Channel::Mirror => self.compose(KIND_MIRROR, None, None),
        }
    }

    fn compose(&self, kind: &str, nsp: Option<&str>, tail: Option<&str>) -> String {
        let len = self.prefix.len()
            + kind.len()
            + nsp.map_or(0, |n| n.len() + 1)
            + tail.map_or(0, |t| t.len() + 1);
        let mut out = String::with_capacity(len);
        out.push_str(&self.prefix);
        out.push_str(kind);
        if let Some(nsp) = nsp {
            out.push_str(nsp);
            out.push('#');
        }
        if let Some(tail) = tail {
            out.push_str(tail);
            out.push('#');
        }
        out
    }

    /// `<prefix>#<nsp>#`: broadcasts to everyone or to 0 / ≥ 2 rooms.
    pub fn broadcast(&self, nsp: &str) -> String {
        self.compose(KIND_BROADCAST, Some(nsp), None)
    }

    /// `<prefix>#<nsp>#<room>#`: broadcasts to exactly one room (a socket id is a room too).
    pub fn room(&self, nsp: &str, room: &str) -> String {
        self.compose(KIND_BROADCAST, Some(nsp), Some(room))
    }

    /// The channel Node would publish a broadcast to `rooms` on: the room form iff there is
    /// exactly one distinct room (the Node adapter counts a `Set`), else the plain form.
    pub fn broadcast_for_rooms(&self, nsp: &str, rooms: &[String]) -> String {
        match single_distinct(rooms) {
            Some(room) => self.room(nsp, room),
            None => self.broadcast(nsp),
        }
    }

    /// The `PSUBSCRIBE` pattern that receives every broadcast of `nsp`: `<prefix>#<nsp>#*`,
    /// with Redis glob characters (`* ? [ ] \`) in prefix and namespace escaped. The Node
    /// adapter does not escape them (so a `*` in its namespace acts as a wildcard); receivers
    /// must therefore still check the channel and `packet.nsp`, as Node does.
    pub fn broadcast_pattern(&self, nsp: &str) -> String {
        let mut out = glob_escape(&self.broadcast(nsp));
        out.push('*');
        out
    }

    /// `<prefix>-request#<nsp>#`: requests; its `NUMSUB` is the member count.
    pub fn request(&self, nsp: &str) -> String {
        self.compose(KIND_REQUEST, Some(nsp), None)
    }

    /// `<prefix>-response#<nsp>#`: replies, shared by all requesters.
    pub fn response(&self, nsp: &str) -> String {
        self.compose(KIND_RESPONSE, Some(nsp), None)
    }

    /// `<prefix>-response#<nsp>#<uid>#`: replies addressed to the requester `uid`.
    pub fn response_for(&self, nsp: &str, uid: &str) -> String {
        self.compose(KIND_RESPONSE, Some(nsp), Some(uid))
    }

    /// Where to publish the reply to `request` received on namespace `nsp`.
    ///
    /// `specific` mirrors the Node option `publishOnSpecificResponseChannel`: the
    /// requester-specific channel when the request has a uid, else the shared one. A
    /// server-side-emit acknowledgement ([`Response::ServerSideEmitAck`]) always goes to the
    /// shared channel, whatever `specific` says, because that is where Node sends it.
    pub fn reply_channel(&self, nsp: &str, request: &Request, specific: bool) -> String {
        let shared_only = matches!(request.kind, RequestKind::ServerSideEmit { .. });
        match (&request.uid, specific && !shared_only) {
            (Some(uid), true) => self.response_for(nsp, uid),
            _ => self.response(nsp),
        }
    }

    /// `<prefix>-ferrio#`: ferrio's room mirror (see [`Channel`] for why this name).
    pub fn mirror(&self) -> String {
        self.compose(KIND_MIRROR, None, None)
    }

    /// What `channel` is, reading the namespace up to the first `#` after the kind.
    ///
    /// A namespace that itself contains `#` makes broadcast and reply names ambiguous (Node
    /// has the same ambiguity); use [`ChannelNames::parse_in_namespace`] when the namespace is
    /// known. Request channels are never ambiguous: everything between the kind and the final
    /// `#` is the namespace.
    pub fn parse(&self, channel: &str) -> Result<Channel, ClusterError> {
        let foreign = || ClusterError::ForeignChannel {
            channel: channel.to_owned(),
        };
        let rest = channel
            .strip_prefix(self.prefix.as_str())
            .ok_or_else(foreign)?;
        if let Some(rest) = rest.strip_prefix(KIND_BROADCAST) {
            let (nsp, tail) = split_nsp(rest).ok_or_else(foreign)?;
            return Ok(Channel::Broadcast { nsp, room: tail });
        }
        if let Some(rest) = rest.strip_prefix(KIND_REQUEST) {
            let nsp = rest
                .strip_suffix('#')
                .filter(|n| !n.is_empty())
                .ok_or_else(foreign)?;
            return Ok(Channel::Request {
                nsp: nsp.to_owned(),
            });
        }
        if let Some(rest) = rest.strip_prefix(KIND_RESPONSE) {
            let (nsp, uid) = split_nsp(rest).ok_or_else(foreign)?;
            return Ok(Channel::Response { nsp, uid });
        }
        if rest == KIND_MIRROR {
            return Ok(Channel::Mirror);
        }
        Err(foreign())
    }

    /// What `channel` is, given that it was received for namespace `nsp` — the way the Node
    /// adapter matches (`startsWith(<prefix>#<nsp>#)`), so `#` in namespaces or rooms is fine.
    /// `None` if the channel does not belong to `nsp`.
    pub fn parse_in_namespace(&self, nsp: &str, channel: &str) -> Option<Channel> {
        let tail_of = |base: String| -> Option<Option<String>> {
            let rest = channel.strip_prefix(base.as_str())?;
            if rest.is_empty() {
                return Some(None);
            }
            rest.strip_suffix('#').map(|t| Some(t.to_owned()))
        };
        if let Some(room) = tail_of(self.broadcast(nsp)) {
            return Some(Channel::Broadcast {
                nsp: nsp.to_owned(),
                room,
            });
        }
        if channel == self.request(nsp) {
            return Some(Channel::Request {
                nsp: nsp.to_owned(),
            });
        }
        if let Some(uid) = tail_of(self.response(nsp)) {
            return Some(Channel::Response {
                nsp: nsp.to_owned(),
                uid,
            });
        }
        None
    }
}

/// Splits `<nsp>#` or `<nsp>#<tail>#` (namespace without `#`).
fn split_nsp(rest: &str) -> Option<(String, Option<String>)> {
    let (nsp, after) = rest.split_once('#')?;
    if nsp.is_empty() {
        return None;
    }
    if after.is_empty() {
        return Some((nsp.to_owned(), None));
    }
    let tail = after.strip_suffix('#')?;
    Some((nsp.to_owned(), Some(tail.to_owned())))
}

fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The room if `rooms` holds exactly one distinct name.
fn single_distinct(rooms: &[String]) -> Option<&str> {
    let first = rooms.first()?;
    rooms.iter().all(|r| r == first).then_some(first.as_str())
}

/// `items` without repeats, first occurrence kept (what `[...new Set(items)]` gives).
fn dedup_keep_order(items: &[String]) -> Vec<&str> {
    let mut seen = HashSet::with_capacity(items.len());
    items
        .iter()
        .filter(|i| seen.insert(i.as_str()))
        .map(String::as_str)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Payloads: msgpack values <-> JSON values + binary attachments
// ---------------------------------------------------------------------------------------------

/// The arguments of an event, in the form the Socket.IO encoder wants.
///
/// # Format
///
/// `data` is `[eventName, ...args]`. Every binary value (msgpack `bin` on the cluster wire) is
/// replaced by the Socket.IO placeholder `{"_placeholder":true,"num":N}`, where `N` indexes
/// `attachments`, numbered depth-first in document order — exactly what
/// `socket.io-parser`'s `deconstructPacket` produces. Object key order is kept both ways.
///
/// On the cluster wire (inside a broadcast) the same data is a msgpack array with the binary
/// values inline: `93 a3"bin" c4 04 01020304 81 a4"when" a6"binary"` is
/// `data = ["bin", {"_placeholder":true,"num":0}, {"when":"binary"}]`,
/// `attachments = [01 02 03 04]`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EventData {
    /// `[eventName, ...args]`, binary values replaced by placeholders.
    pub data: Vec<Value>,
    /// The binary values, indexed by the placeholders' `num`.
    pub attachments: Vec<Bytes>,
}

impl EventData {
    /// Event data without binary values.
    pub fn new(data: Vec<Value>) -> Self {
        Self {
            data,
            attachments: Vec::new(),
        }
    }

    /// The event name (first element) when it is a string.
    pub fn event(&self) -> Option<&str> {
        self.data.first().and_then(Value::as_str)
    }

    /// Converts a msgpack array as found in `packet.data`.
    pub fn from_msgpack(value: Mp) -> Result<Self, ClusterError> {
        let Mp::Array(items) = value else {
            return Err(ClusterError::WrongType {
                field: "packet.data",
                expected: "array",
            });
        };
        let mut attachments = Vec::new();
        let mut data = Vec::with_capacity(items.len());
        for item in items {
            let converted = mp_to_json(item, Some(&mut attachments), "packet.data", 1)?;
            // JSON.stringify writes `undefined` array elements as null.
            data.push(converted.unwrap_or(Value::Null));
        }
        Ok(Self { data, attachments })
    }

    /// The msgpack array Node puts in `packet.data` (placeholders become `bin`).
    pub fn to_msgpack(&self) -> Result<Mp, ClusterError> {
        let items = self
            .data
            .iter()
            .map(|v| json_to_mp(v, Some(&self.attachments), 1))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Mp::Array(items))
    }
}

/// One value that may contain binary data (an acknowledgement argument).
///
/// # Format
///
/// Same convention as [`EventData`]: binary values are placeholders indexing `attachments`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Payload {
    /// The value, binary values replaced by placeholders.
    pub value: Value,
    /// The binary values, indexed by the placeholders' `num`.
    pub attachments: Vec<Bytes>,
}

impl Payload {
    /// A payload without binary values.
    pub fn new(value: Value) -> Self {
        Self {
            value,
            attachments: Vec::new(),
        }
    }

    /// Converts any msgpack value (`undefined` becomes `null`).
    pub fn from_msgpack(value: Mp) -> Result<Self, ClusterError> {
        let mut attachments = Vec::new();
        let value = mp_to_json(value, Some(&mut attachments), "packet", 0)?.unwrap_or(Value::Null);
        Ok(Self { value, attachments })
    }

    /// The msgpack form (placeholders become `bin`).
    pub fn to_msgpack(&self) -> Result<Mp, ClusterError> {
        json_to_mp(&self.value, Some(&self.attachments), 0)
    }
}

/// msgpack → JSON. `sink` collects binary values (replaced by placeholders); without a sink,
/// binary is an error. `Ok(None)` is JavaScript `undefined` (legacy ext 0 form).
fn mp_to_json(
    value: Mp,
    mut sink: Option<&mut Vec<Bytes>>,
    field: &'static str,
    depth: usize,
) -> Result<Option<Value>, ClusterError> {
    if depth > MAX_NESTING {
        return Err(ClusterError::TooDeep);
    }
    let binary = |bytes: Vec<u8>, sink: Option<&mut Vec<Bytes>>| match sink {
        Some(sink) => {
            let num = sink.len();
            sink.push(Bytes::from(bytes));
            Ok(placeholder(num))
        }
        None => Err(ClusterError::UnexpectedBinary { field }),
    };
    let json = match value {
        Mp::Nil => Value::Null,
        Mp::Boolean(b) => Value::Bool(b),
        Mp::Integer(i) => match (i.as_u64(), i.as_i64()) {
            (Some(u), _) => Value::from(u),
            (None, Some(s)) => Value::from(s),
            (None, None) => Value::Null,
        },
        Mp::F32(f) => js_number(f64::from(f)),
        Mp::F64(f) => js_number(f),
        Mp::String(s) => Value::String(s.into_str().ok_or(ClusterError::InvalidUtf8)?),
        Mp::Binary(bytes) => binary(bytes, sink)?,
        Mp::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                let v = mp_to_json(item, sink.as_deref_mut(), field, depth + 1)?;
                out.push(v.unwrap_or(Value::Null));
            }
            Value::Array(out)
        }
        Mp::Map(entries) => {
            let mut out = Map::with_capacity(entries.len());
            for (k, v) in entries {
                let key = js_key(k)?;
                // JSON.stringify drops keys whose value is undefined.
                if let Some(v) = mp_to_json(v, sink.as_deref_mut(), field, depth + 1)? {
                    out.insert(key, v);
                }
            }
            Value::Object(out)
        }
        Mp::Ext(ty, bytes) => match ext_to_json(ty, &bytes) {
            ExtMeaning::Undefined => return Ok(None),
            ExtMeaning::Value(v) => v,
            ExtMeaning::Binary => binary(bytes, sink)?,
            ExtMeaning::Tagged => {
                let tagged = binary(bytes, sink)?;
                Value::Array(vec![Value::from(ty), tagged])
            }
        },
    };
    Ok(Some(json))
}

/// What a notepack extension value means once in JavaScript.
enum ExtMeaning {
    /// Legacy `undefined` (fixext1, type 0).
    Undefined,
    /// A date (already as its JSON form) or another plain value.
    Value(Value),
    /// Legacy ArrayBuffer (type 0): binary.
    Binary,
    /// Any other extension: notepack returns `[type, Buffer]`.
    Tagged,
}

fn ext_to_json(ty: i8, bytes: &[u8]) -> ExtMeaning {
    match (ty, bytes.len()) {
        (-1, 4) => ExtMeaning::Value(js_date_json(f64::from(be_u32(bytes, 0)) * 1e3)),
        (-1, 8) => {
            let hi = be_u32(bytes, 0);
            let lo = be_u32(bytes, 4);
            let secs = f64::from(hi & 0x3) * 4_294_967_296.0 + f64::from(lo);
            let nanos = f64::from(hi >> 2);
            ExtMeaning::Value(js_date_json(secs * 1e3 + nanos / 1e6))
        }
        (-1, 12) => {
            let nanos = f64::from(be_u32(bytes, 0));
            let secs =
                f64::from(be_u32(bytes, 4) as i32) * 4_294_967_296.0 + f64::from(be_u32(bytes, 8));
            ExtMeaning::Value(js_date_json(secs * 1e3 + nanos / 1e6))
        }
        // Legacy notepack 2.x forms, still decoded by 3.x.
        (0, 1) => ExtMeaning::Undefined,
        (0, 8) => {
            let ms =
                f64::from(be_u32(bytes, 0) as i32) * 4_294_967_296.0 + f64::from(be_u32(bytes, 4));
            ExtMeaning::Value(js_date_json(ms))
        }
        (0, _) => ExtMeaning::Binary,
        _ => ExtMeaning::Tagged,
    }
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    if let Some(src) = bytes.get(at..at + 4) {
        word.copy_from_slice(src);
    }
    u32::from_be_bytes(word)
}

/// A JavaScript number as JSON: integral values within 2^53 as integers (JSON.stringify
/// prints `2`, not `2.0`), non-finite values as `null` (as JSON.stringify does).
fn js_number(f: f64) -> Value {
    const SAFE: f64 = 9_007_199_254_740_992.0;
    if f.is_finite() && f.fract() == 0.0 && f.abs() <= SAFE {
        // In range and integral, so the cast is exact.
        return Value::from(f as i64);
    }
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

/// The property name JavaScript gives a decoded map key.
fn js_key(key: Mp) -> Result<String, ClusterError> {
    match key {
        Mp::String(s) => s.into_str().ok_or(ClusterError::InvalidUtf8),
        Mp::Integer(i) => Ok(i.to_string()),
        Mp::Boolean(b) => Ok(b.to_string()),
        Mp::Nil => Ok("null".to_owned()),
        Mp::F32(f) => Ok(js_number(f64::from(f)).to_string()),
        Mp::F64(f) => Ok(js_number(f).to_string()),
        _ => Err(ClusterError::UnsupportedKey),
    }
}

fn placeholder(num: usize) -> Value {
    let mut m = Map::with_capacity(2);
    m.insert("_placeholder".to_owned(), Value::Bool(true));
    m.insert("num".to_owned(), Value::from(num));
    Value::Object(m)
}

/// JSON → msgpack the way notepack writes the same JavaScript value. With `attachments`,
/// placeholders become `bin` (an object with `_placeholder: true` must then name an existing
/// attachment, as `socket.io-parser` requires); without, objects are written as they are.
fn json_to_mp(
    value: &Value,
    attachments: Option<&[Bytes]>,
    depth: usize,
) -> Result<Mp, ClusterError> {
    if depth > MAX_NESTING {
        return Err(ClusterError::TooDeep);
    }
    Ok(match value {
        Value::Null => Mp::Nil,
        Value::Bool(b) => Mp::Boolean(*b),
        Value::Number(n) => number_to_mp(n),
        Value::String(s) => Mp::from(s.as_str()),
        Value::Array(items) => Mp::Array(
            items
                .iter()
                .map(|v| json_to_mp(v, attachments, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => {
            if let Some(attachments) = attachments {
                if map.get("_placeholder") == Some(&Value::Bool(true)) {
                    let num = map.get("num").and_then(Value::as_u64);
                    let found = num
                        .and_then(|n| usize::try_from(n).ok())
                        .and_then(|n| attachments.get(n));
                    return match found {
                        Some(bytes) => Ok(Mp::Binary(bytes.to_vec())),
                        None => Err(ClusterError::BadPlaceholder {
                            num,
                            attachments: attachments.len(),
                        }),
                    };
                }
            }
            Mp::Map(
                map.iter()
                    .map(|(k, v)| {
                        Ok((Mp::from(k.as_str()), json_to_mp(v, attachments, depth + 1)?))
                    })
                    .collect::<Result<_, ClusterError>>()?,
            )
        }
    })
}

fn number_to_mp(n: &Number) -> Mp {
    if let Some(u) = n.as_u64() {
        return Mp::from(u);
    }
    if let Some(i) = n.as_i64() {
        return Mp::from(i);
    }
    let f = n.as_f64().unwrap_or(f64::NAN);
    // notepack writes any integral number as an integer.
    if f.fract() == 0.0 {
        if (0.0..18_446_744_073_709_551_616.0).contains(&f) {
            return Mp::from(f as u64);
        }
        if (-9_223_372_036_854_775_808.0..0.0).contains(&f) {
            return Mp::from(f as i64);
        }
    }
    Mp::F64(f)
}

// ---------------------------------------------------------------------------------------------
// Dates (the JSON form of notepack timestamps, and the handshake `time` string)
// ---------------------------------------------------------------------------------------------

/// Largest absolute time value (ms) a JavaScript `Date` holds.
const JS_MAX_TIME_MS: f64 = 8.64e15;

/// `JSON.stringify(new Date(ms))`: the ISO-8601 string, or `null` for an invalid date.
fn js_date_json(ms: f64) -> Value {
    if !ms.is_finite() || ms.abs() > JS_MAX_TIME_MS {
        return Value::Null;
    }
    // TimeClip truncates toward zero; the range check above keeps the cast exact.
    let ms = ms.trunc() as i64;
    let (year, month, day, rest) = civil_parts(ms);
    let year = if (0..=9999).contains(&year) {
        format!("{year:04}")
    } else if year < 0 {
        format!("-{:06}", -year)
    } else {
        format!("+{year:06}")
    };
    Value::String(format!(
        "{year}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1000 % 60,
        rest % 1000
    ))
}

/// `new Date(ms).toString()` in UTC, the form Node puts in `handshake.time`
/// (e.g. `Tue Nov 24 2026 21:21:48 GMT+0000 (Coordinated Universal Time)`).
pub fn js_date_string(epoch_ms: i64) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (year, month, day, rest) = civil_parts(epoch_ms);
    // 1970-01-01 was a Thursday.
    let weekday = (epoch_ms.div_euclid(86_400_000) + 4).rem_euclid(7) as usize;
    let year = if year < 0 {
        format!("-{:04}", -year)
    } else {
        format!("{year:04}")
    };
    format!(
        "{} {} {day:02} {year} {:02}:{:02}:{:02} GMT+0000 (Coordinated Universal Time)",
        DAYS[weekday],
        MONTHS[(month - 1) as usize % 12],
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1000 % 60,
    )
}

/// (year, month 1–12, day 1–31, milliseconds into the day) of a UTC time value, proleptic
/// Gregorian calendar. Counts 400-year eras of 146 097 days from 0000-03-01, so that the
/// leap day falls at the end of each computed year.
fn civil_parts(ms: i64) -> (i64, i64, i64, i64) {
    let days = ms.div_euclid(86_400_000);
    let rest = ms.rem_euclid(86_400_000);
    let from_march_epoch = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = from_march_epoch.div_euclid(146_097);
    let day_of_era = from_march_epoch.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let march_month = (5 * day_of_year + 2) / 153; // 0 = March
    let day = day_of_year - (153 * march_month + 2) / 5 + 1;
    let month = if march_month < 10 {
        march_month + 3
    } else {
        march_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day, rest)
}

// ---------------------------------------------------------------------------------------------
// Decoding helpers: bytes -> msgpack tree, field access
// ---------------------------------------------------------------------------------------------

/// One msgpack value filling all of `bytes`.
fn read_msgpack(bytes: &[u8]) -> Result<Mp, ClusterError> {
    if bytes.is_empty() {
        return Err(ClusterError::Empty);
    }
    let mut cursor = bytes;
    // rmpv spends about two depth units per nesting level; MAX_NESTING is enforced exactly
    // by the conversions, this only bounds the reader's recursion.
    let value = rmpv::decode::read_value_with_max_depth(&mut cursor, 4 * MAX_NESTING + 16)
        .map_err(|e| match e {
            rmpv::decode::Error::DepthLimitExceeded => ClusterError::TooDeep,
            other => ClusterError::Msgpack {
                reason: other.to_string(),
            },
        })?;
    if !cursor.is_empty() {
        return Err(ClusterError::TrailingBytes {
            count: cursor.len(),
        });
    }
    Ok(value)
}

/// A request or reply: JSON when the first byte is `{` (what the Node adapter checks),
/// msgpack otherwise. JSON is turned into the same msgpack tree so one reader serves both.
fn read_json_or_msgpack(bytes: &[u8]) -> Result<Mp, ClusterError> {
    match bytes.first() {
        None => Err(ClusterError::Empty),
        Some(b'{') => {
            let json: Value = serde_json::from_slice(bytes).map_err(|e| ClusterError::Json {
                reason: e.to_string(),
            })?;
            json_to_mp(&json, None, 0)
        }
        Some(_) => read_msgpack(bytes),
    }
}

fn write_msgpack(value: &Mp) -> Result<Vec<u8>, ClusterError> {
    let mut out = Vec::with_capacity(128);
    rmpv::encode::write_value(&mut out, value).map_err(|e| ClusterError::Encode {
        reason: e.to_string(),
    })?;
    Ok(out)
}

fn write_json(value: &Value) -> Result<Vec<u8>, ClusterError> {
    serde_json::to_vec(value).map_err(|e| ClusterError::Encode {
        reason: e.to_string(),
    })
}

/// The string-keyed fields of a decoded map, looked up by name in any order. A repeated key
/// keeps its last value, as a JavaScript object would.
struct Fields {
    entries: Vec<(String, Mp)>,
}

impl Fields {
    fn from_value(value: Mp, field: &'static str) -> Result<Self, ClusterError> {
        let Mp::Map(pairs) = value else {
            return Err(ClusterError::WrongType {
                field,
                expected: "map",
            });
        };
        // Keys that cannot name a field we read (arrays, maps, binary) are skipped. Repeats
        // stay in the list; lookups take the last one, so building this is O(n) whatever
        // the input.
        let entries = pairs
            .into_iter()
            .filter_map(|(k, v)| js_key(k).ok().map(|key| (key, v)))
            .collect();
        Ok(Self { entries })
    }

    /// Removes every occurrence of a field and returns the last one's value; `nil` counts as
    /// absent (JSON `null` / JS `undefined`). What is left keeps its received order.
    fn take(&mut self, key: &str) -> Option<Mp> {
        let last = self.entries.iter().rposition(|(k, _)| k == key)?;
        let value = std::mem::replace(&mut self.entries[last].1, Mp::Nil);
        self.entries.retain(|(k, _)| k != key);
        match value {
            Mp::Nil => None,
            v => Some(v),
        }
    }

    fn has(&self, key: &str) -> bool {
        self.entries
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .is_some_and(|(_, v)| !v.is_nil())
    }

    fn string(&mut self, key: &str, field: &'static str) -> Result<String, ClusterError> {
        self.opt_string(key, field)?
            .ok_or(ClusterError::MissingField { field })
    }

    fn opt_string(
        &mut self,
        key: &str,
        field: &'static str,
    ) -> Result<Option<String>, ClusterError> {
        self.take(key).map(|v| as_string(v, field)).transpose()
    }

    fn opt_bool(&mut self, key: &str, field: &'static str) -> Result<Option<bool>, ClusterError> {
        match self.take(key) {
            None => Ok(None),
            Some(Mp::Boolean(b)) => Ok(Some(b)),
            Some(_) => Err(ClusterError::WrongType {
                field,
                expected: "boolean",
            }),
        }
    }

    fn opt_u64(&mut self, key: &str, field: &'static str) -> Result<Option<u64>, ClusterError> {
        self.take(key).map(|v| as_u64(&v, field)).transpose()
    }

    /// A list of room names; absent means empty (Node builds `new Set(undefined)`).
    fn rooms(&mut self, key: &str, field: &'static str) -> Result<Vec<String>, ClusterError> {
        match self.take(key) {
            None => Ok(Vec::new()),
            Some(v) => room_list(v, field),
        }
    }

    fn required(&mut self, key: &str, field: &'static str) -> Result<Mp, ClusterError> {
        self.take(key).ok_or(ClusterError::MissingField { field })
    }

    /// A plain JSON value (no binary allowed); absent is `null`.
    fn json(&mut self, key: &str, field: &'static str) -> Result<Value, ClusterError> {
        match self.take(key) {
            None => Ok(Value::Null),
            Some(v) => Ok(mp_to_json(v, None, field, 0)?.unwrap_or(Value::Null)),
        }
    }

    /// The request/reply `type` number, if any.
    fn type_code(&mut self) -> Result<Option<i64>, ClusterError> {
        match self.take("type") {
            None => Ok(None),
            Some(v) => as_i64(&v).map(Some).ok_or(ClusterError::WrongType {
                field: "type",
                expected: "integer",
            }),
        }
    }
}

fn as_string(value: Mp, field: &'static str) -> Result<String, ClusterError> {
    match value {
        Mp::String(s) => s.into_str().ok_or(ClusterError::InvalidUtf8),
        _ => Err(ClusterError::WrongType {
            field,
            expected: "string",
        }),
    }
}

/// An integer, also from an integral float (a JavaScript number is one or the other).
fn as_i64(value: &Mp) -> Option<i64> {
    match value {
        Mp::Integer(i) => i.as_i64(),
        Mp::F64(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Some(*f as i64),
        Mp::F32(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Some(*f as i64),
        _ => None,
    }
}

/// A non-negative number; fractional values are truncated (they only ever are milliseconds).
fn as_u64(value: &Mp, field: &'static str) -> Result<u64, ClusterError> {
    let wrong = ClusterError::WrongType {
        field,
        expected: "non-negative number",
    };
    match value {
        Mp::Integer(i) => i.as_u64().ok_or(wrong),
        Mp::F64(f) if f.is_finite() && *f >= 0.0 && *f < 1.8e19 => Ok(f.trunc() as u64),
        Mp::F32(f) if f.is_finite() && *f >= 0.0 => Ok(f64::from(*f).trunc() as u64),
        _ => Err(wrong),
    }
}

/// Room names: strings, or numbers (socket.io allows numeric rooms; they travel as numbers
/// and are named here by their JavaScript string form).
fn room_list(value: Mp, field: &'static str) -> Result<Vec<String>, ClusterError> {
    let Mp::Array(items) = value else {
        return Err(ClusterError::WrongType {
            field,
            expected: "array of room names",
        });
    };
    items
        .into_iter()
        .map(|item| match item {
            Mp::String(s) => s.into_str().ok_or(ClusterError::InvalidUtf8),
            Mp::Integer(i) => Ok(i.to_string()),
            Mp::F64(f) => Ok(js_number(f).to_string()),
            Mp::F32(f) => Ok(js_number(f64::from(f)).to_string()),
            _ => Err(ClusterError::WrongType {
                field,
                expected: "array of room names",
            }),
        })
        .collect()
}

fn str_array(items: &[String]) -> Value {
    Value::Array(items.iter().map(|s| Value::String(s.clone())).collect())
}

fn mp_str_array<'a>(items: impl IntoIterator<Item = &'a str>) -> Mp {
    Mp::Array(items.into_iter().map(Mp::from).collect())
}

fn mp_map(entries: Vec<(&str, Mp)>) -> Mp {
    Mp::Map(entries.into_iter().map(|(k, v)| (Mp::from(k), v)).collect())
}

fn json_obj(entries: Vec<(&str, Value)>) -> Value {
    Value::Object(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
    )
}

// ---------------------------------------------------------------------------------------------
// Broadcasts
// ---------------------------------------------------------------------------------------------

/// `flags` of a broadcast (socket.io's `BroadcastFlags`).
///
/// # Format
///
/// A map; every key optional: `volatile` (bool), `compress` (bool), `local` (bool, never
/// published by Node since local broadcasts stay local), `timeout` (ms, set on broadcasts
/// with acknowledgements), `expectSingleResponse` (bool, `RemoteSocket` operations). Unknown
/// keys are kept in `other`. Encoded in the order above, then `other` in its order; an empty
/// set of flags is the empty map `80`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BroadcastFlags {
    /// Drop the packet for clients that cannot take it now.
    pub volatile: Option<bool>,
    /// Whether to compress the WebSocket frame.
    pub compress: Option<bool>,
    /// Do not publish to other nodes.
    pub local: Option<bool>,
    /// Acknowledgement timeout in milliseconds.
    pub timeout: Option<u64>,
    /// Set by `RemoteSocket` operations.
    pub expect_single_response: Option<bool>,
    /// Flags this codec does not know, in received order.
    pub other: Map<String, Value>,
}

impl BroadcastFlags {
    fn decode(value: Mp) -> Result<Self, ClusterError> {
        let mut f = Fields::from_value(value, "opts.flags")?;
        let flags = Self {
            volatile: f.opt_bool("volatile", "opts.flags.volatile")?,
            compress: f.opt_bool("compress", "opts.flags.compress")?,
            local: f.opt_bool("local", "opts.flags.local")?,
            timeout: f.opt_u64("timeout", "opts.flags.timeout")?,
            expect_single_response: f
                .opt_bool("expectSingleResponse", "opts.flags.expectSingleResponse")?,
            other: Map::new(),
        };
        let mut other = Map::new();
        for (key, v) in f.entries {
            if let Some(v) = mp_to_json(v, None, "opts.flags", 1)? {
                other.insert(key, v);
            }
        }
        Ok(Self { other, ..flags })
    }

    fn encode(&self) -> Result<Mp, ClusterError> {
        let mut entries = Vec::new();
        let known = [
            ("volatile", self.volatile.map(Mp::from)),
            ("compress", self.compress.map(Mp::from)),
            ("local", self.local.map(Mp::from)),
            ("timeout", self.timeout.map(Mp::from)),
            (
                "expectSingleResponse",
                self.expect_single_response.map(Mp::from),
            ),
        ];
        for (key, value) in known {
            if let Some(value) = value {
                entries.push((Mp::from(key), value));
            }
        }
        for (key, value) in &self.other {
            entries.push((Mp::from(key.as_str()), json_to_mp(value, None, 1)?));
        }
        Ok(Mp::Map(entries))
    }
}

/// `opts` of a broadcast: which sockets receive it.
///
/// # Format
///
/// Node adapter: `{rooms: [..], except: [..], flags: {..}}` (this key order is what the
/// encoder writes). The emitter writes `{rooms, flags, except}`; decoding is by key, and a
/// missing `rooms`/`except` is an empty list, a missing `flags` no flags. An empty `rooms`
/// means every socket of the namespace; `except` removes the members of those rooms.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BroadcastOptions {
    /// Target rooms (a socket id is a room too); empty = everyone.
    pub rooms: Vec<String>,
    /// Rooms whose members are excluded.
    pub except: Vec<String>,
    /// Delivery flags.
    pub flags: BroadcastFlags,
}

impl BroadcastOptions {
    /// The single room this broadcast targets, if it targets exactly one (then it travels on
    /// the room channel `<prefix>#<nsp>#<room>#`).
    pub fn single_room(&self) -> Option<&str> {
        single_distinct(&self.rooms)
    }

    fn decode(value: Mp) -> Result<Self, ClusterError> {
        let mut f = Fields::from_value(value, "opts")?;
        Ok(Self {
            rooms: f.rooms("rooms", "opts.rooms")?,
            except: f.rooms("except", "opts.except")?,
            flags: match f.take("flags") {
                Some(v) => BroadcastFlags::decode(v)?,
                None => BroadcastFlags::default(),
            },
        })
    }

    /// Node writes `[...rooms]` from a `Set` and `[...new Set(except)]`: no repeats.
    fn encode(&self) -> Result<Mp, ClusterError> {
        Ok(mp_map(vec![
            ("rooms", mp_str_array(dedup_keep_order(&self.rooms))),
            ("except", mp_str_array(dedup_keep_order(&self.except))),
            ("flags", self.flags.encode()?),
        ]))
    }
}

/// The Socket.IO packet inside a broadcast.
///
/// # Format
///
/// `{type: 2, data: [event, ...args], nsp: "/"}` (encoded in this key order). No `id`:
/// acknowledgements travel as [`RequestKind::Broadcast`]. A missing `nsp` means `/`, as in
/// the Node adapter.
#[derive(Debug, Clone, PartialEq)]
pub struct BroadcastPacket {
    /// Socket.IO packet type: [`PACKET_TYPE_EVENT`] for every emit, binary arguments or not.
    pub packet_type: u8,
    /// `[event, ...args]` with binary values as attachments.
    pub data: EventData,
    /// Namespace the packet belongs to; receivers drop packets of other namespaces.
    pub nsp: String,
}

impl BroadcastPacket {
    /// An EVENT packet for namespace `nsp`.
    pub fn event(nsp: impl Into<String>, data: EventData) -> Self {
        Self {
            packet_type: PACKET_TYPE_EVENT,
            data,
            nsp: nsp.into(),
        }
    }

    fn decode(value: Mp) -> Result<Self, ClusterError> {
        let mut f = Fields::from_value(value, "packet")?;
        let packet_type = f
            .take("type")
            .and_then(|v| as_i64(&v))
            .and_then(|t| u8::try_from(t).ok())
            .ok_or(ClusterError::WrongType {
                field: "packet.type",
                expected: "packet type number",
            })?;
        let data = EventData::from_msgpack(f.required("data", "packet.data")?)?;
        let nsp = f
            .opt_string("nsp", "packet.nsp")?
            .unwrap_or_else(|| "/".to_owned());
        Ok(Self {
            packet_type,
            data,
            nsp,
        })
    }

    fn encode(&self) -> Result<Mp, ClusterError> {
        Ok(mp_map(vec![
            ("type", Mp::from(self.packet_type)),
            ("data", self.data.to_msgpack()?),
            ("nsp", Mp::from(self.nsp.as_str())),
        ]))
    }
}

/// A classic broadcast, published on `<prefix>#<nsp>#` or `<prefix>#<nsp>#<room>#`.
///
/// # Format
///
/// Always msgpack (notepack), an array of three:
///
/// ```text
/// 93                                  array(3)
///   a6 "FoGlaV"                       uid of the sending adapter ("emitter" for the emitter)
///   83 a4"type" 02                    packet: {type, data, nsp}
///      a4"data" 93 a4"chat" ab"hello room1" 81 a1"n" 01
///      a3"nsp"  a1"/"
///   83 a5"rooms" 91 a5"room1"         opts: {rooms, except, flags}
///      a6"except" 90
///      a5"flags" 80
/// ```
///
/// Receivers drop their own uid, default `packet.nsp` to `/`, drop other namespaces, then
/// deliver locally (see `redis-adapter.md` §2.4 for the room pre-check on room channels).
#[derive(Debug, Clone, PartialEq)]
pub struct BroadcastMessage {
    /// Adapter uid of the sender (per namespace), or [`EMITTER_UID`].
    pub uid: String,
    /// What to deliver.
    pub packet: BroadcastPacket,
    /// To whom.
    pub opts: BroadcastOptions,
}

impl BroadcastMessage {
    /// Decodes the bytes of a message received on a broadcast channel.
    pub fn decode(bytes: &[u8]) -> Result<Self, ClusterError> {
        let Mp::Array(items) = read_msgpack(bytes)? else {
            return Err(ClusterError::WrongType {
                field: "broadcast",
                expected: "array [uid, packet, opts]",
            });
        };
        let mut items = items.into_iter();
        let (Some(uid), Some(packet), Some(opts)) = (items.next(), items.next(), items.next())
        else {
            return Err(ClusterError::MissingField {
                field: "broadcast[2]",
            });
        };
        Ok(Self {
            uid: as_string(uid, "broadcast[0]")?,
            packet: BroadcastPacket::decode(packet)?,
            opts: BroadcastOptions::decode(opts)?,
        })
    }

    /// The sender's uid (the first element) read without decoding the rest; `None` when the
    /// bytes do not start with an array whose first element is a string.
    pub fn sender_uid(bytes: &[u8]) -> Option<&str> {
        let rest = match *bytes.first()? {
            0x91..=0x9f => bytes.get(1..)?,
            0xdc => bytes.get(3..)?,
            0xdd => bytes.get(5..)?,
            _ => return None,
        };
        let (len, at): (usize, usize) = match *rest.first()? {
            b @ 0xa0..=0xbf => (usize::from(b & 0x1f), 1),
            0xd9 => (usize::from(*rest.get(1)?), 2),
            0xda => (
                usize::from(u16::from_be_bytes([*rest.get(1)?, *rest.get(2)?])),
                3,
            ),
            0xdb => {
                let n = u32::from_be_bytes(rest.get(1..5)?.try_into().ok()?);
                (usize::try_from(n).ok()?, 5)
            }
            _ => return None,
        };
        std::str::from_utf8(rest.get(at..at.checked_add(len)?)?).ok()
    }

    /// Encodes the message as the Node adapter does (byte-identical for the same values).
    pub fn encode(&self) -> Result<Vec<u8>, ClusterError> {
        write_msgpack(&Mp::Array(vec![
            Mp::from(self.uid.as_str()),
            self.packet.encode()?,
            self.opts.encode()?,
        ]))
    }

    /// The channel Node would publish this message on.
    pub fn channel(&self, names: &ChannelNames) -> String {
        names.broadcast_for_rooms(&self.packet.nsp, &self.opts.rooms)
    }

    /// Whether `@socket.io/redis-emitter` sent it.
    pub fn is_from_emitter(&self) -> bool {
        self.uid == EMITTER_UID
    }
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

/// The classic adapter's `RequestType` numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestType {
    /// 0: socket ids in rooms (legacy; no 8.x node sends it, every node still answers).
    Sockets = 0,
    /// 1: all room names.
    AllRooms = 1,
    /// 2: make matching sockets join rooms.
    RemoteJoin = 2,
    /// 3: make matching sockets leave rooms.
    RemoteLeave = 3,
    /// 4: disconnect matching sockets.
    RemoteDisconnect = 4,
    /// 5: describe matching sockets.
    RemoteFetch = 5,
    /// 6: server-side event (request) and its acknowledgement (reply).
    ServerSideEmit = 6,
    /// 7: broadcast with acknowledgements.
    Broadcast = 7,
    /// 8: reply: how many clients received a broadcast with acknowledgements.
    BroadcastClientCount = 8,
    /// 9: reply: one client's acknowledgement.
    BroadcastAck = 9,
}

impl RequestType {
    /// The number on the wire.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The type of a wire number.
    pub fn from_code(code: i64) -> Option<Self> {
        Some(match code {
            0 => Self::Sockets,
            1 => Self::AllRooms,
            2 => Self::RemoteJoin,
            3 => Self::RemoteLeave,
            4 => Self::RemoteDisconnect,
            5 => Self::RemoteFetch,
            6 => Self::ServerSideEmit,
            7 => Self::Broadcast,
            8 => Self::BroadcastClientCount,
            9 => Self::BroadcastAck,
            _ => return None,
        })
    }
}

/// Which sockets a `REMOTE_*` request applies to.
///
/// # Format
///
/// `{"rooms":[..],"except":[..]}` (classic requests carry no `flags`; a `flags` key sent by
/// anyone else is ignored). A missing list is empty; empty `rooms` = every socket.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SocketSelector {
    /// Sockets in any of these rooms (empty = all sockets of the namespace).
    pub rooms: Vec<String>,
    /// Minus sockets in any of these rooms.
    pub except: Vec<String>,
}

impl SocketSelector {
    fn decode(value: Mp) -> Result<Self, ClusterError> {
        let mut f = Fields::from_value(value, "opts")?;
        Ok(Self {
            rooms: f.rooms("rooms", "opts.rooms")?,
            except: f.rooms("except", "opts.except")?,
        })
    }

    fn to_json(&self) -> Value {
        json_obj(vec![
            ("rooms", str_array(&self.rooms)),
            ("except", str_array(&self.except)),
        ])
    }
}

/// A message on `<prefix>-request#<nsp>#`.
///
/// # Format
///
/// JSON (first byte `{`) for every type but 7, which Node writes as a msgpack map; decoding
/// accepts either encoding for any type and any key order. Key order as Node writes them
/// (the encoder reproduces it byte for byte):
///
/// ```text
/// 0 SOCKETS            {"uid","requestId","type":0,"rooms":[..]}
/// 1 ALL_ROOMS          {"uid","requestId","type":1}
/// 2 REMOTE_JOIN        {"uid","type":2,"opts":{"rooms","except"},"rooms":[..]}
/// 3 REMOTE_LEAVE       {"uid","type":3,"opts":{..},"rooms":[..]}
/// 4 REMOTE_DISCONNECT  {"uid","type":4,"opts":{..},"close":false}
///   legacy 2/3         {"uid","requestId","type","sid","room"}   (pre-8 remoteJoin/Leave)
///   legacy 4           {"uid","requestId","type":4,"sid","close"}
/// 5 REMOTE_FETCH       {"uid","requestId","type":5,"opts":{..}}
/// 6 SERVER_SIDE_EMIT   {"uid","type":6,"data":[ev,..]}  /  {"uid","requestId","type":6,"data"}
/// 7 BROADCAST          msgpack {uid, requestId, type:7, packet:{type,data,nsp}, opts:{rooms,except,flags}}
/// ```
///
/// The emitter omits `uid` on 2/3/4 and sends `"uid":"emitter"` on 6. Types 8 and 9 are
/// replies ([`Response`]); on the request channel they are [`ClusterError::UnknownRequestType`],
/// as the Node adapter ignores them there.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Adapter uid of the requester; `None` when the emitter sent a `REMOTE_*` request.
    pub uid: Option<String>,
    /// What is asked.
    pub kind: RequestKind,
}

/// The body of a [`Request`], one variant per request shape.
#[derive(Debug, Clone, PartialEq)]
pub enum RequestKind {
    /// 0: ids of the local sockets in `rooms`; reply [`Response::SocketIds`].
    Sockets {
        /// Correlation id.
        request_id: String,
        /// Rooms to look in (empty = all).
        rooms: Vec<String>,
    },
    /// 1: every local room name, socket-id rooms included; reply [`Response::AllRooms`].
    AllRooms {
        /// Correlation id.
        request_id: String,
    },
    /// 2: matching local sockets join `rooms`. Every node applies it, the sender included
    /// (that is how a Node sender applies it to its own sockets); no reply.
    RemoteJoin {
        /// Which sockets.
        opts: SocketSelector,
        /// Rooms to join.
        rooms: Vec<String>,
    },
    /// 3: matching local sockets leave `rooms`; applied like 2; no reply.
    RemoteLeave {
        /// Which sockets.
        opts: SocketSelector,
        /// Rooms to leave.
        rooms: Vec<String>,
    },
    /// 4: matching local sockets are disconnected; applied like 2; no reply.
    RemoteDisconnect {
        /// Which sockets.
        opts: SocketSelector,
        /// Also close the underlying connection.
        close: bool,
    },
    /// Pre-8 form of 2: socket `sid` joins `room`; the owner replies [`Response::Acknowledged`].
    LegacyRemoteJoin {
        /// Correlation id.
        request_id: String,
        /// The socket.
        sid: String,
        /// The room.
        room: String,
    },
    /// Pre-8 form of 3: socket `sid` leaves `room`; the owner replies [`Response::Acknowledged`].
    LegacyRemoteLeave {
        /// Correlation id.
        request_id: String,
        /// The socket.
        sid: String,
        /// The room.
        room: String,
    },
    /// Pre-8 form of 4: socket `sid` is disconnected; the owner replies [`Response::Acknowledged`].
    LegacyRemoteDisconnect {
        /// Correlation id.
        request_id: String,
        /// The socket.
        sid: String,
        /// Also close the underlying connection.
        close: bool,
    },
    /// 5: describe matching local sockets; reply [`Response::RemoteFetch`] (even if none match).
    RemoteFetch {
        /// Correlation id.
        request_id: String,
        /// Which sockets.
        opts: SocketSelector,
    },
    /// 6: a server-side event for the other nodes' `serverSideEmit` listeners. With a
    /// `request_id`, the first acknowledgement is sent back as [`Response::ServerSideEmitAck`].
    ServerSideEmit {
        /// Present iff an acknowledgement is wanted.
        request_id: Option<String>,
        /// `[event, ...args]` (plain JSON: this request is JSON-encoded).
        data: Vec<Value>,
    },
    /// 7: a broadcast whose clients must acknowledge. Every other node delivers it locally,
    /// replies one [`Response::BroadcastClientCount`] (even 0), then one
    /// [`Response::BroadcastAck`] per client acknowledgement.
    Broadcast {
        /// Correlation id.
        request_id: String,
        /// What to deliver.
        packet: BroadcastPacket,
        /// To whom; `flags.timeout` bounds how long the requester listens.
        opts: BroadcastOptions,
    },
}

impl Request {
    /// The wire type number of this request.
    pub fn request_type(&self) -> RequestType {
        match &self.kind {
            RequestKind::Sockets { .. } => RequestType::Sockets,
            RequestKind::AllRooms { .. } => RequestType::AllRooms,
            RequestKind::RemoteJoin { .. } | RequestKind::LegacyRemoteJoin { .. } => {
                RequestType::RemoteJoin
            }
            RequestKind::RemoteLeave { .. } | RequestKind::LegacyRemoteLeave { .. } => {
                RequestType::RemoteLeave
            }
            RequestKind::RemoteDisconnect { .. } | RequestKind::LegacyRemoteDisconnect { .. } => {
                RequestType::RemoteDisconnect
            }
            RequestKind::RemoteFetch { .. } => RequestType::RemoteFetch,
            RequestKind::ServerSideEmit { .. } => RequestType::ServerSideEmit,
            RequestKind::Broadcast { .. } => RequestType::Broadcast,
        }
    }

    /// The correlation id, for the request types that have one.
    pub fn request_id(&self) -> Option<&str> {
        match &self.kind {
            RequestKind::Sockets { request_id, .. }
            | RequestKind::AllRooms { request_id }
            | RequestKind::LegacyRemoteJoin { request_id, .. }
            | RequestKind::LegacyRemoteLeave { request_id, .. }
            | RequestKind::LegacyRemoteDisconnect { request_id, .. }
            | RequestKind::RemoteFetch { request_id, .. }
            | RequestKind::Broadcast { request_id, .. } => Some(request_id),
            RequestKind::ServerSideEmit { request_id, .. } => request_id.as_deref(),
            RequestKind::RemoteJoin { .. }
            | RequestKind::RemoteLeave { .. }
            | RequestKind::RemoteDisconnect { .. } => None,
        }
    }

    /// Decodes a message received on a request channel.
    pub fn decode(bytes: &[u8]) -> Result<Self, ClusterError> {
        let mut f = Fields::from_value(read_json_or_msgpack(bytes)?, "request")?;
        let code = f
            .type_code()?
            .ok_or(ClusterError::MissingField { field: "type" })?;
        let uid = f.opt_string("uid", "uid")?;
        let kind = match RequestType::from_code(code) {
            Some(RequestType::Sockets) => RequestKind::Sockets {
                request_id: f.string("requestId", "requestId")?,
                rooms: f.rooms("rooms", "rooms")?,
            },
            Some(RequestType::AllRooms) => RequestKind::AllRooms {
                request_id: f.string("requestId", "requestId")?,
            },
            Some(t @ (RequestType::RemoteJoin | RequestType::RemoteLeave)) => {
                let join = t == RequestType::RemoteJoin;
                if let Some(opts) = f.take("opts") {
                    let opts = SocketSelector::decode(opts)?;
                    let rooms = f.rooms("rooms", "rooms")?;
                    if join {
                        RequestKind::RemoteJoin { opts, rooms }
                    } else {
                        RequestKind::RemoteLeave { opts, rooms }
                    }
                } else {
                    let request_id = f.string("requestId", "requestId")?;
                    let sid = f.string("sid", "sid")?;
                    let room = match f.required("room", "room")? {
                        Mp::String(s) => s.into_str().ok_or(ClusterError::InvalidUtf8)?,
                        other => room_list(Mp::Array(vec![other]), "room")?
                            .pop()
                            .unwrap_or_default(),
                    };
                    if join {
                        RequestKind::LegacyRemoteJoin {
                            request_id,
                            sid,
                            room,
                        }
                    } else {
                        RequestKind::LegacyRemoteLeave {
                            request_id,
                            sid,
                            room,
                        }
                    }
                }
            }
            Some(RequestType::RemoteDisconnect) => {
                let close = f.opt_bool("close", "close")?.unwrap_or(false);
                if let Some(opts) = f.take("opts") {
                    RequestKind::RemoteDisconnect {
                        opts: SocketSelector::decode(opts)?,
                        close,
                    }
                } else {
                    RequestKind::LegacyRemoteDisconnect {
                        request_id: f.string("requestId", "requestId")?,
                        sid: f.string("sid", "sid")?,
                        close,
                    }
                }
            }
            Some(RequestType::RemoteFetch) => RequestKind::RemoteFetch {
                request_id: f.string("requestId", "requestId")?,
                opts: SocketSelector::decode(f.required("opts", "opts")?)?,
            },
            Some(RequestType::ServerSideEmit) => {
                let request_id = f.opt_string("requestId", "requestId")?;
                let Value::Array(data) = f.json("data", "data")? else {
                    return Err(ClusterError::WrongType {
                        field: "data",
                        expected: "array [event, ...args]",
                    });
                };
                RequestKind::ServerSideEmit { request_id, data }
            }
            Some(RequestType::Broadcast) => RequestKind::Broadcast {
                request_id: f.string("requestId", "requestId")?,
                packet: BroadcastPacket::decode(f.required("packet", "packet")?)?,
                opts: BroadcastOptions::decode(f.required("opts", "opts")?)?,
            },
            Some(RequestType::BroadcastClientCount | RequestType::BroadcastAck) | None => {
                return Err(ClusterError::UnknownRequestType { code })
            }
        };
        Ok(Self { uid, kind })
    }

    /// Encodes the request as the Node adapter does: JSON, or msgpack for type 7.
    pub fn encode(&self) -> Result<Vec<u8>, ClusterError> {
        if let RequestKind::Broadcast {
            request_id,
            packet,
            opts,
        } = &self.kind
        {
            let mut entries = Vec::with_capacity(5);
            if let Some(uid) = &self.uid {
                entries.push(("uid", Mp::from(uid.as_str())));
            }
            entries.push(("requestId", Mp::from(request_id.as_str())));
            entries.push(("type", Mp::from(RequestType::Broadcast.code())));
            entries.push(("packet", packet.encode()?));
            entries.push(("opts", opts.encode()?));
            return write_msgpack(&mp_map(entries));
        }
        let mut obj = Map::new();
        if let Some(uid) = &self.uid {
            obj.insert("uid".into(), Value::String(uid.clone()));
        }
        if let Some(request_id) = self.request_id() {
            obj.insert("requestId".into(), Value::String(request_id.to_owned()));
        }
        obj.insert("type".into(), Value::from(self.request_type().code()));
        match &self.kind {
            RequestKind::Sockets { rooms, .. } => {
                obj.insert("rooms".into(), str_array(rooms));
            }
            RequestKind::AllRooms { .. } | RequestKind::Broadcast { .. } => {}
            RequestKind::RemoteJoin { opts, rooms } | RequestKind::RemoteLeave { opts, rooms } => {
                obj.insert("opts".into(), opts.to_json());
                obj.insert("rooms".into(), str_array(rooms));
            }
            RequestKind::RemoteDisconnect { opts, close } => {
                obj.insert("opts".into(), opts.to_json());
                obj.insert("close".into(), Value::Bool(*close));
            }
            RequestKind::LegacyRemoteJoin { sid, room, .. }
            | RequestKind::LegacyRemoteLeave { sid, room, .. } => {
                obj.insert("sid".into(), Value::String(sid.clone()));
                obj.insert("room".into(), Value::String(room.clone()));
            }
            RequestKind::LegacyRemoteDisconnect { sid, close, .. } => {
                obj.insert("sid".into(), Value::String(sid.clone()));
                obj.insert("close".into(), Value::Bool(*close));
            }
            RequestKind::RemoteFetch { opts, .. } => {
                obj.insert("opts".into(), opts.to_json());
            }
            RequestKind::ServerSideEmit { data, .. } => {
                obj.insert("data".into(), Value::Array(data.clone()));
            }
        }
        write_json(&Value::Object(obj))
    }
}

// ---------------------------------------------------------------------------------------------
// Replies
// ---------------------------------------------------------------------------------------------

/// The handshake of a socket, as a `REMOTE_FETCH` reply carries it (socket.io's
/// `socket.handshake` minus `sessionStore`).
///
/// # Format
///
/// ```text
/// {"headers":{..},"time":"Tue Nov 24 2026 21:21:48 GMT+0000 (Coordinated Universal Time)",
///  "address":"::ffff:127.0.0.1","xdomain":false,"secure":false,"issued":1795555308812,
///  "url":"/socket.io/?EIO=4&transport=websocket","query":{"EIO":"4",..},"auth":{..}}
/// ```
///
/// Encoded in this key order, then `other`. Decoding is by key; an absent field takes its
/// default, a field of the wrong type is an error. `time` is `Date#toString()` in the
/// server's time zone; [`js_date_string`] writes the UTC form.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Handshake {
    /// Request headers (lower-case names; values strings, or arrays for repeated headers).
    pub headers: Map<String, Value>,
    /// Creation time as `Date#toString()`.
    pub time: String,
    /// Client address.
    pub address: String,
    /// Whether the request was cross-origin.
    pub xdomain: bool,
    /// Whether the connection is TLS.
    pub secure: bool,
    /// Creation time, ms since the epoch.
    pub issued: u64,
    /// Request URL (path and query).
    pub url: String,
    /// Query parameters.
    pub query: Map<String, Value>,
    /// The client's `auth` payload.
    pub auth: Map<String, Value>,
    /// Keys not listed above, in received order.
    pub other: Map<String, Value>,
}

impl Handshake {
    fn decode(value: Mp) -> Result<Self, ClusterError> {
        let mut f = Fields::from_value(value, "sockets.handshake")?;
        let object = |v: Value, field| match v {
            Value::Object(m) => Ok(m),
            Value::Null => Ok(Map::new()),
            _ => Err(ClusterError::WrongType {
                field,
                expected: "object",
            }),
        };
        let hs = Self {
            headers: object(f.json("headers", "handshake.headers")?, "handshake.headers")?,
            time: f.opt_string("time", "handshake.time")?.unwrap_or_default(),
            address: f
                .opt_string("address", "handshake.address")?
                .unwrap_or_default(),
            xdomain: f.opt_bool("xdomain", "handshake.xdomain")?.unwrap_or(false),
            secure: f.opt_bool("secure", "handshake.secure")?.unwrap_or(false),
            issued: f.opt_u64("issued", "handshake.issued")?.unwrap_or(0),
            url: f.opt_string("url", "handshake.url")?.unwrap_or_default(),
            query: object(f.json("query", "handshake.query")?, "handshake.query")?,
            auth: object(f.json("auth", "handshake.auth")?, "handshake.auth")?,
            other: Map::new(),
        };
        let mut other = Map::new();
        for (key, v) in f.entries {
            if let Some(v) = mp_to_json(v, None, "handshake", 1)? {
                other.insert(key, v);
            }
        }
        Ok(Self { other, ..hs })
    }

    fn to_json(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("headers".into(), Value::Object(self.headers.clone()));
        obj.insert("time".into(), Value::String(self.time.clone()));
        obj.insert("address".into(), Value::String(self.address.clone()));
        obj.insert("xdomain".into(), Value::Bool(self.xdomain));
        obj.insert("secure".into(), Value::Bool(self.secure));
        obj.insert("issued".into(), Value::from(self.issued));
        obj.insert("url".into(), Value::String(self.url.clone()));
        obj.insert("query".into(), Value::Object(self.query.clone()));
        obj.insert("auth".into(), Value::Object(self.auth.clone()));
        for (k, v) in &self.other {
            obj.insert(k.clone(), v.clone());
        }
        Value::Object(obj)
    }
}

/// One socket in a `REMOTE_FETCH` reply: what socket.io turns into a `RemoteSocket`.
///
/// # Format
///
/// `{"id":"EjiEoSYPlrmiUPDZAAAA","handshake":{..},"rooms":["EjiEoSYPlrmiUPDZAAAA","room1"],
/// "data":{..}}` — `rooms` includes the socket's own id room; `data` is `socket.data`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RemoteSocket {
    /// Socket id (also the name of its own room).
    pub id: String,
    /// Its handshake.
    pub handshake: Handshake,
    /// Rooms it is in, its own id room included.
    pub rooms: Vec<String>,
    /// Application data attached to it (`null` when absent).
    pub data: Value,
}

impl RemoteSocket {
    fn decode(value: Mp) -> Result<Self, ClusterError> {
        let mut f = Fields::from_value(value, "sockets[]")?;
        Ok(Self {
            id: f.string("id", "sockets[].id")?,
            handshake: match f.take("handshake") {
                Some(v) => Handshake::decode(v)?,
                None => Handshake::default(),
            },
            rooms: f.rooms("rooms", "sockets[].rooms")?,
            data: f.json("data", "sockets[].data")?,
        })
    }

    fn to_json(&self) -> Value {
        json_obj(vec![
            ("id", Value::String(self.id.clone())),
            ("handshake", self.handshake.to_json()),
            ("rooms", str_array(&self.rooms)),
            ("data", self.data.clone()),
        ])
    }
}

/// A message on `<prefix>-response#<nsp>#` or `<prefix>-response#<nsp>#<uid>#`.
///
/// # Format
///
/// JSON except [`Response::BroadcastAck`] (msgpack map). Replies to 0/1/5 and the legacy
/// 2/3/4 carry no `type`: Node matches them by `requestId` against its pending requests, so
/// the decoder tells them apart by shape (`sockets` of strings → 0, `sockets` of objects or
/// empty → 5, `rooms` → 1, neither → legacy acknowledgement):
///
/// ```text
/// reply to 0    {"requestId","sockets":["id",..]}
/// reply to 1    {"requestId","rooms":["room",..]}
/// reply to 5    {"requestId","sockets":[{"id","handshake","rooms","data"},..]}
/// legacy 2/3/4  {"requestId"}
/// 6 ack         {"type":6,"requestId","data":<first ack argument>}
/// 8             {"type":8,"requestId","clientCount":N}
/// 9             msgpack {type:9, requestId, packet:<first ack argument>}
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    /// Reply to [`RequestKind::Sockets`].
    SocketIds {
        /// Correlation id.
        request_id: String,
        /// Ids of the responder's matching sockets.
        sockets: Vec<String>,
    },
    /// Reply to [`RequestKind::AllRooms`].
    AllRooms {
        /// Correlation id.
        request_id: String,
        /// The responder's room names, socket-id rooms included.
        rooms: Vec<String>,
    },
    /// Reply to [`RequestKind::RemoteFetch`].
    RemoteFetch {
        /// Correlation id.
        request_id: String,
        /// The responder's matching sockets.
        sockets: Vec<RemoteSocket>,
    },
    /// Reply to a legacy join/leave/disconnect (or any reply with only a `requestId`, which
    /// a Node requester still counts).
    Acknowledged {
        /// Correlation id.
        request_id: String,
    },
    /// A node's acknowledgement of a [`RequestKind::ServerSideEmit`] (always on the shared
    /// response channel).
    ServerSideEmitAck {
        /// Correlation id.
        request_id: String,
        /// The first argument the listener acknowledged with (`null` if none).
        data: Value,
    },
    /// How many local clients a node delivered a [`RequestKind::Broadcast`] to.
    BroadcastClientCount {
        /// Correlation id.
        request_id: String,
        /// Number of acknowledgements to expect from that node.
        client_count: u64,
    },
    /// One client's acknowledgement of a [`RequestKind::Broadcast`].
    BroadcastAck {
        /// Correlation id.
        request_id: String,
        /// The first argument of the client's acknowledgement (may hold binary).
        packet: Payload,
    },
}

impl Response {
    /// The correlation id the requester matches on.
    pub fn request_id(&self) -> &str {
        match self {
            Self::SocketIds { request_id, .. }
            | Self::AllRooms { request_id, .. }
            | Self::RemoteFetch { request_id, .. }
            | Self::Acknowledged { request_id }
            | Self::ServerSideEmitAck { request_id, .. }
            | Self::BroadcastClientCount { request_id, .. }
            | Self::BroadcastAck { request_id, .. } => request_id,
        }
    }

    /// Decodes a message received on a response channel.
    pub fn decode(bytes: &[u8]) -> Result<Self, ClusterError> {
        let mut f = Fields::from_value(read_json_or_msgpack(bytes)?, "response")?;
        let code = f.type_code()?;
        let request_id = f.string("requestId", "requestId")?;
        Ok(match code {
            Some(6) => Self::ServerSideEmitAck {
                request_id,
                data: f.json("data", "data")?,
            },
            Some(8) => Self::BroadcastClientCount {
                request_id,
                client_count: f.opt_u64("clientCount", "clientCount")?.ok_or(
                    ClusterError::MissingField {
                        field: "clientCount",
                    },
                )?,
            },
            Some(9) => Self::BroadcastAck {
                request_id,
                packet: match f.take("packet") {
                    Some(v) => Payload::from_msgpack(v)?,
                    None => Payload::default(),
                },
            },
            Some(code) => return Err(ClusterError::UnknownResponseType { code }),
            None if f.has("sockets") => {
                let Some(Mp::Array(items)) = f.take("sockets") else {
                    return Err(ClusterError::WrongType {
                        field: "sockets",
                        expected: "array",
                    });
                };
                if matches!(items.first(), Some(Mp::String(_))) {
                    Self::SocketIds {
                        request_id,
                        sockets: room_list(Mp::Array(items), "sockets")?,
                    }
                } else {
                    Self::RemoteFetch {
                        request_id,
                        sockets: items
                            .into_iter()
                            .map(RemoteSocket::decode)
                            .collect::<Result<_, _>>()?,
                    }
                }
            }
            None if f.has("rooms") => Self::AllRooms {
                request_id,
                rooms: f.rooms("rooms", "rooms")?,
            },
            None => Self::Acknowledged { request_id },
        })
    }

    /// Encodes the reply as the Node adapter does (JSON, or msgpack for [`Self::BroadcastAck`]).
    pub fn encode(&self) -> Result<Vec<u8>, ClusterError> {
        let rid = |id: &str| Value::String(id.to_owned());
        let json = match self {
            Self::SocketIds {
                request_id,
                sockets,
            } => json_obj(vec![
                ("requestId", rid(request_id)),
                ("sockets", str_array(sockets)),
            ]),
            Self::AllRooms { request_id, rooms } => json_obj(vec![
                ("requestId", rid(request_id)),
                ("rooms", str_array(rooms)),
            ]),
            Self::RemoteFetch {
                request_id,
                sockets,
            } => json_obj(vec![
                ("requestId", rid(request_id)),
                (
                    "sockets",
                    Value::Array(sockets.iter().map(RemoteSocket::to_json).collect()),
                ),
            ]),
            Self::Acknowledged { request_id } => json_obj(vec![("requestId", rid(request_id))]),
            Self::ServerSideEmitAck { request_id, data } => json_obj(vec![
                ("type", Value::from(RequestType::ServerSideEmit.code())),
                ("requestId", rid(request_id)),
                ("data", data.clone()),
            ]),
            Self::BroadcastClientCount {
                request_id,
                client_count,
            } => json_obj(vec![
                (
                    "type",
                    Value::from(RequestType::BroadcastClientCount.code()),
                ),
                ("requestId", rid(request_id)),
                ("clientCount", Value::from(*client_count)),
            ]),
            Self::BroadcastAck { request_id, packet } => {
                return write_msgpack(&mp_map(vec![
                    ("type", Mp::from(RequestType::BroadcastAck.code())),
                    ("requestId", Mp::from(request_id.as_str())),
                    ("packet", packet.to_msgpack()?),
                ]));
            }
        };
        write_json(&json)
    }
}

// ---------------------------------------------------------------------------------------------
// Room mirror (ferrio only)
// ---------------------------------------------------------------------------------------------

/// The rooms of one namespace on one node, in a [`MirrorMessage::Snapshot`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorNamespace {
    /// Namespace.
    pub nsp: String,
    /// Its rooms with their local members.
    pub rooms: Vec<MirrorRoom>,
}

/// One room and its members on the sending node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorRoom {
    /// Room name.
    pub room: String,
    /// Socket ids of the sending node's members.
    pub members: Vec<String>,
}

/// A message of ferrio's room mirror, on `<prefix>-ferrio#` (see [`Channel`]).
///
/// Every ferrio node publishes its own room lifecycle here and keeps the other ferrio nodes'
/// rooms from it, so sizes, lists and members are answered from memory. Node nodes never
/// subscribe to this channel.
///
/// # Format
///
/// One JSON object, `v` (= [`MIRROR_VERSION`]) first, then `type`, then the fields:
///
/// ```text
/// {"v":1,"type":"hello","node":"n1","namespaces":["/"],"interval_ms":5000}
/// {"v":1,"type":"heartbeat","node":"n1","namespaces":["/"],"interval_ms":5000,"seq":42}
/// {"v":1,"type":"goodbye","node":"n1"}
/// {"v":1,"type":"create-room","node":"n1","seq":7,"nsp":"/","room":"r"}
/// {"v":1,"type":"delete-room","node":"n1","seq":9,"nsp":"/","room":"r"}
/// {"v":1,"type":"join-room","node":"n1","seq":8,"nsp":"/","room":"r","socket":"<socket id>"}
/// {"v":1,"type":"leave-room","node":"n1","seq":9,"nsp":"/","room":"r","socket":"<socket id>"}
/// {"v":1,"type":"sync-request","node":"n2"}
/// {"v":1,"type":"snapshot","node":"n1","seq":9,"namespaces":[{"nsp":"/","rooms":[{"room":"r","members":["<socket id>"]}]}]}
/// ```
///
/// `seq` numbers the sender's room events (create/delete/join/leave), starting at 1 after its
/// `hello`; a heartbeat repeats the last one and a snapshot states the last one it includes.
/// A receiver that sees a gap (or hears of a node it never heard `hello` from) sends a
/// `sync-request`; every node answers with a `snapshot` of its own rooms, which replaces
/// what the receivers held for that node. `hello` means "forget what you knew about me";
/// `goodbye` (or no heartbeat for a few `interval_ms`) means "drop my rooms". Unknown extra
/// fields are ignored; an unknown `type` or another `v` is an error the bridge logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum MirrorMessage {
    /// A node (re)started or reconnected: its snapshot follows; receivers keep its previous rooms
    /// until that snapshot replaces them (members missing from it get `leave-room` presence).
    Hello {
        /// Sender (`FERRIO_NODE_ID`).
        node: String,
        /// Namespaces it serves (it is a member of their request channels).
        namespaces: Vec<String>,
        /// How often it sends heartbeats.
        interval_ms: u64,
    },
    /// Periodic liveness, with the namespaces served now and the last event number.
    Heartbeat {
        /// Sender.
        node: String,
        /// Namespaces it serves.
        namespaces: Vec<String>,
        /// How often it sends heartbeats.
        interval_ms: u64,
        /// `seq` of its last room event.
        seq: u64,
    },
    /// A node leaves the cluster cleanly: drop its rooms now.
    Goodbye {
        /// Sender.
        node: String,
    },
    /// A room came into existence on the sender.
    CreateRoom {
        /// Sender.
        node: String,
        /// Event number.
        seq: u64,
        /// Namespace.
        nsp: String,
        /// Room.
        room: String,
    },
    /// A room ceased to exist on the sender (its last local member left).
    DeleteRoom {
        /// Sender.
        node: String,
        /// Event number.
        seq: u64,
        /// Namespace.
        nsp: String,
        /// Room.
        room: String,
    },
    /// A socket of the sender joined a room.
    JoinRoom {
        /// Sender.
        node: String,
        /// Event number.
        seq: u64,
        /// Namespace.
        nsp: String,
        /// Room.
        room: String,
        /// Socket id.
        socket: String,
    },
    /// A socket of the sender left a room (disconnecting included).
    LeaveRoom {
        /// Sender.
        node: String,
        /// Event number.
        seq: u64,
        /// Namespace.
        nsp: String,
        /// Room.
        room: String,
        /// Socket id.
        socket: String,
    },
    /// The sender wants every node's snapshot (it is new, or it saw a gap).
    SyncRequest {
        /// Sender.
        node: String,
    },
    /// The sender's complete room view, answering a sync request.
    Snapshot {
        /// Sender.
        node: String,
        /// `seq` of the last room event it reflects.
        seq: u64,
        /// Its rooms per namespace.
        namespaces: Vec<MirrorNamespace>,
    },
}

/// The `type` names of [`MirrorMessage`], to tell "unknown type" from "malformed".
const MIRROR_TYPES: [&str; 9] = [
    "hello",
    "heartbeat",
    "goodbye",
    "create-room",
    "delete-room",
    "join-room",
    "leave-room",
    "sync-request",
    "snapshot",
];

impl MirrorMessage {
    /// The sending node.
    pub fn node(&self) -> &str {
        match self {
            Self::Hello { node, .. }
            | Self::Heartbeat { node, .. }
            | Self::Goodbye { node }
            | Self::CreateRoom { node, .. }
            | Self::DeleteRoom { node, .. }
            | Self::JoinRoom { node, .. }
            | Self::LeaveRoom { node, .. }
            | Self::SyncRequest { node }
            | Self::Snapshot { node, .. } => node,
        }
    }

    /// Encodes the message (JSON, `v` first).
    pub fn encode(&self) -> Result<Vec<u8>, ClusterError> {
        let body = serde_json::to_value(self).map_err(|e| ClusterError::Encode {
            reason: e.to_string(),
        })?;
        let mut obj = Map::new();
        obj.insert("v".into(), Value::from(MIRROR_VERSION));
        if let Value::Object(fields) = body {
            obj.extend(fields);
        }
        write_json(&Value::Object(obj))
    }

    /// Decodes a message received on the mirror channel.
    pub fn decode(bytes: &[u8]) -> Result<Self, ClusterError> {
        if bytes.is_empty() {
            return Err(ClusterError::Empty);
        }
        let value: Value = serde_json::from_slice(bytes).map_err(|e| ClusterError::Json {
            reason: e.to_string(),
        })?;
        let Value::Object(mut obj) = value else {
            return Err(ClusterError::WrongType {
                field: "mirror",
                expected: "object",
            });
        };
        let version = obj
            .remove("v")
            .ok_or(ClusterError::MissingField { field: "v" })?
            .as_u64()
            .ok_or(ClusterError::WrongType {
                field: "v",
                expected: "version number",
            })?;
        if version != MIRROR_VERSION {
            return Err(ClusterError::UnsupportedMirrorVersion { version });
        }
        match obj.get("type") {
            None => return Err(ClusterError::MissingField { field: "type" }),
            Some(Value::String(t)) if MIRROR_TYPES.contains(&t.as_str()) => {}
            Some(Value::String(t)) => {
                return Err(ClusterError::UnknownMirrorType { name: t.clone() })
            }
            Some(_) => {
                return Err(ClusterError::WrongType {
                    field: "type",
                    expected: "string",
                })
            }
        }
        serde_json::from_value(Value::Object(obj)).map_err(|e| ClusterError::InvalidMirror {
            reason: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CLASSIC: &str = include_str!("../../../shared/protocol/samples/classic/decoded.json");
    const CLASSIC_SPECIFIC: &str =
        include_str!("../../../shared/protocol/samples/classic-specific/decoded.json");

    fn unhex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// One PUBLISH of a capture.
    struct Published {
        file: &'static str,
        index: usize,
        channel: String,
        bytes: Vec<u8>,
        decoded: Value,
        sender: String,
    }

    fn capture(file: &'static str, text: &str) -> Vec<Value> {
        let Value::Array(entries) = serde_json::from_str::<Value>(text).unwrap() else {
            panic!("{file}: not an array");
        };
        entries
    }

    fn published() -> Vec<Published> {
        let mut out = Vec::new();
        for (file, text) in [("classic", CLASSIC), ("classic-specific", CLASSIC_SPECIFIC)] {
            for (index, e) in capture(file, text).into_iter().enumerate() {
                if e["cmd"] != "PUBLISH" {
                    continue;
                }
                let bytes = unhex(e["hex"].as_str().unwrap());
                assert_eq!(bytes.len() as u64, e["size"].as_u64().unwrap());
                out.push(Published {
                    file,
                    index,
                    channel: e["channel"].as_str().unwrap().to_owned(),
                    bytes,
                    decoded: e["decoded"].clone(),
                    sender: e["client_name"].as_str().unwrap().to_owned(),
                });
            }
        }
        assert_eq!(out.len(), 2 * 35, "captures changed: update the tests");
        out
    }

    fn entry(file: &str, index: usize) -> Published {
        published()
            .into_iter()
            .find(|p| p.file == file && p.index == index)
            .unwrap()
    }

    fn names() -> ChannelNames {
        ChannelNames::default()
    }

    /// The capture's JSON view of a value: placeholders back to `{"$bin": "<hex>"}`.
    fn capture_view(value: &Value, attachments: &[Bytes]) -> Value {
        match value {
            Value::Object(m) if m.get("_placeholder") == Some(&Value::Bool(true)) => {
                let n = m["num"].as_u64().unwrap() as usize;
                json!({ "$bin": hex(&attachments[n]) })
            }
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), capture_view(v, attachments)))
                    .collect(),
            ),
            Value::Array(items) => {
                Value::Array(items.iter().map(|v| capture_view(v, attachments)).collect())
            }
            other => other.clone(),
        }
    }

    fn flags_view(flags: &BroadcastFlags) -> Value {
        let mp = flags.encode().unwrap();
        mp_to_json(mp, None, "flags", 0).unwrap().unwrap()
    }

    fn broadcast_view(msg: &BroadcastMessage) -> Value {
        let data = Value::Array(msg.packet.data.data.clone());
        json!([
            msg.uid,
            {
                "type": msg.packet.packet_type,
                "data": capture_view(&data, &msg.packet.data.attachments),
                "nsp": msg.packet.nsp,
            },
            {
                "rooms": msg.opts.rooms,
                "except": msg.opts.except,
                "flags": flags_view(&msg.opts.flags),
            }
        ])
    }

    // ---- captures: broadcasts ------------------------------------------------------------

    #[test]
    fn every_captured_broadcast_decodes_to_the_captured_values_and_channel() {
        let mut seen = 0;
        for p in published() {
            let Ok(Channel::Broadcast { nsp, room }) = names().parse(&p.channel) else {
                continue;
            };
            seen += 1;
            let msg = BroadcastMessage::decode(&p.bytes)
                .unwrap_or_else(|e| panic!("{} #{}: {e}", p.file, p.index));
            assert_eq!(broadcast_view(&msg), p.decoded, "{} #{}", p.file, p.index);
            assert_eq!(msg.packet.nsp, nsp);
            assert_eq!(msg.opts.single_room(), room.as_deref());
            assert_eq!(msg.channel(&names()), p.channel);
            assert_eq!(msg.is_from_emitter(), p.sender == "emitter");
        }
        assert_eq!(seen, 2 * 11);
    }

    #[test]
    fn sender_uid_reads_the_uid_of_every_captured_broadcast_and_nothing_else() {
        for p in published() {
            if !matches!(names().parse(&p.channel), Ok(Channel::Broadcast { .. })) {
                continue;
            }
            let msg = BroadcastMessage::decode(&p.bytes).unwrap();
            assert_eq!(
                BroadcastMessage::sender_uid(&p.bytes),
                Some(msg.uid.as_str()),
                "{} #{}",
                p.file,
                p.index
            );
        }
        let long = "u".repeat(300);
        let bytes = write_msgpack(&Mp::Array(vec![Mp::from(long.as_str()), Mp::Nil])).unwrap();
        assert_eq!(BroadcastMessage::sender_uid(&bytes), Some(long.as_str()));
        let bytes = write_msgpack(&Mp::Array(vec![Mp::from(7), Mp::from("x")])).unwrap();
        assert_eq!(BroadcastMessage::sender_uid(&bytes), None);
        assert_eq!(BroadcastMessage::sender_uid(b""), None);
        assert_eq!(BroadcastMessage::sender_uid(&[0x93, 0xa5, b'a']), None);
        assert_eq!(
            BroadcastMessage::sender_uid(&[0x93, 0xdb, 0xff, 0xff]),
            None
        );
        assert_eq!(BroadcastMessage::sender_uid(&[0x83, 0xa1, b'a']), None);
    }

    #[test]
    fn adapter_broadcasts_reencode_byte_for_byte() {
        let mut seen = 0;
        for p in published() {
            if !matches!(names().parse(&p.channel), Ok(Channel::Broadcast { .. }))
                || p.sender == "emitter"
            {
                continue;
            }
            seen += 1;
            let msg = BroadcastMessage::decode(&p.bytes).unwrap();
            assert_eq!(
                hex(&msg.encode().unwrap()),
                hex(&p.bytes),
                "{} #{}",
                p.file,
                p.index
            );
        }
        assert_eq!(seen, 2 * 5);
    }

    #[test]
    fn emitter_broadcasts_reencode_identically_except_adapter_opts_key_order() {
        let mut seen = 0;
        for p in published() {
            if !matches!(names().parse(&p.channel), Ok(Channel::Broadcast { .. }))
                || p.sender != "emitter"
            {
                continue;
            }
            seen += 1;
            let msg = BroadcastMessage::decode(&p.bytes).unwrap();
            let again = msg.encode().unwrap();
            let opts_len = write_msgpack(&msg.opts.encode().unwrap()).unwrap().len();
            assert_eq!(again.len(), p.bytes.len());
            // uid and packet identical; only opts differ ({rooms, flags, except} vs {rooms, except, flags}).
            let cut = p.bytes.len() - opts_len;
            assert_eq!(hex(&again[..cut]), hex(&p.bytes[..cut]));
            assert_eq!(BroadcastMessage::decode(&again).unwrap(), msg);
        }
        assert_eq!(seen, 2 * 6);
    }

    #[test]
    fn binary_broadcast_argument_becomes_a_placeholder_and_an_attachment() {
        let p = entry("classic", 17);
        let msg = BroadcastMessage::decode(&p.bytes).unwrap();
        assert_eq!(msg.uid, "FoGlaV");
        assert_eq!(msg.packet.packet_type, PACKET_TYPE_EVENT);
        assert_eq!(msg.packet.data.event(), Some("bin"));
        assert_eq!(
            Value::Array(msg.packet.data.data.clone()),
            json!(["bin", {"_placeholder": true, "num": 0}, {"when": "binary"}])
        );
        assert_eq!(
            msg.packet.data.attachments,
            vec![Bytes::from_static(&[1, 2, 3, 0xff])]
        );
        assert_eq!(msg.opts.rooms, vec!["room1"]);
        assert_eq!(p.channel, "socket.io#/#room1#");
    }

    #[test]
    fn emitter_binary_broadcast_decodes_with_emitter_uid() {
        let p = entry("classic", 64);
        let msg = BroadcastMessage::decode(&p.bytes).unwrap();
        assert!(msg.is_from_emitter());
        assert_eq!(
            Value::Array(msg.packet.data.data.clone()),
            json!(["em-bin", {"_placeholder": true, "num": 0}])
        );
        assert_eq!(
            msg.packet.data.attachments,
            vec![Bytes::from_static(&[0xde, 0xad])]
        );
    }

    #[test]
    fn two_room_broadcast_keeps_except_and_volatile_compress_flags() {
        let msg = BroadcastMessage::decode(&entry("classic", 15).bytes).unwrap();
        assert_eq!(msg.opts.rooms, vec!["room1", "room2"]);
        assert_eq!(msg.opts.except, vec!["room2"]);
        assert_eq!(msg.opts.flags.volatile, Some(true));
        assert_eq!(msg.opts.flags.compress, Some(false));
        assert_eq!(msg.opts.flags.timeout, None);
        assert!(msg.opts.flags.other.is_empty());
        assert_eq!(msg.opts.single_room(), None);
        assert_eq!(msg.channel(&names()), "socket.io#/#");
    }

    #[test]
    fn emitter_broadcast_to_admin_namespace_names_it_in_packet_and_channel() {
        let p = entry("classic", 66);
        let msg = BroadcastMessage::decode(&p.bytes).unwrap();
        assert_eq!(msg.packet.nsp, "/admin");
        assert_eq!(msg.channel(&names()), "socket.io#/admin#");
        assert_eq!(
            msg.packet.data.data,
            vec![json!("em-admin"), json!("for admins")]
        );
    }

    // ---- captures: requests and replies ----------------------------------------------------

    #[test]
    fn every_captured_request_decodes_and_reencodes_byte_for_byte() {
        let mut seen = 0;
        for p in published() {
            let Ok(Channel::Request { nsp }) = names().parse(&p.channel) else {
                continue;
            };
            seen += 1;
            assert_eq!(nsp, "/");
            let req = Request::decode(&p.bytes)
                .unwrap_or_else(|e| panic!("{} #{}: {e}", p.file, p.index));
            assert_eq!(
                i64::from(req.request_type().code()),
                p.decoded["type"].as_i64().unwrap()
            );
            assert_eq!(req.uid.as_deref(), p.decoded["uid"].as_str());
            assert_eq!(req.request_id(), p.decoded["requestId"].as_str());
            assert_eq!(
                hex(&req.encode().unwrap()),
                hex(&p.bytes),
                "{} #{}",
                p.file,
                p.index
            );
        }
        assert_eq!(seen, 2 * 16);
    }

    #[test]
    fn every_captured_reply_decodes_and_reencodes_byte_for_byte() {
        let mut seen = 0;
        for p in published() {
            let Ok(Channel::Response { nsp, uid }) = names().parse(&p.channel) else {
                continue;
            };
            seen += 1;
            assert_eq!(nsp, "/");
            // classic-specific replies go to the requester's channel, except server-side-emit acks.
            let is_sse_ack = p.decoded["type"] == 6;
            assert_eq!(uid.is_some(), p.file == "classic-specific" && !is_sse_ack);
            let resp = Response::decode(&p.bytes)
                .unwrap_or_else(|e| panic!("{} #{}: {e}", p.file, p.index));
            assert_eq!(resp.request_id(), p.decoded["requestId"].as_str().unwrap());
            assert_eq!(
                hex(&resp.encode().unwrap()),
                hex(&p.bytes),
                "{} #{}",
                p.file,
                p.index
            );
        }
        assert_eq!(seen, 2 * 8);
    }

    #[test]
    fn sockets_join_request_names_selector_and_rooms() {
        let req = Request::decode(&entry("classic", 36).bytes).unwrap();
        assert_eq!(req.uid.as_deref(), Some("FoGlaV"));
        assert_eq!(
            req.kind,
            RequestKind::RemoteJoin {
                opts: SocketSelector {
                    rooms: vec!["room2".into()],
                    except: vec![]
                },
                rooms: vec!["room3".into()],
            }
        );
    }

    #[test]
    fn emitter_join_leave_disconnect_requests_have_no_uid() {
        let join = Request::decode(&entry("classic", 68).bytes).unwrap();
        assert_eq!(join.uid, None);
        assert!(
            matches!(join.kind, RequestKind::RemoteJoin { ref rooms, .. } if rooms == &["em-room"])
        );
        let leave = Request::decode(&entry("classic", 74).bytes).unwrap();
        assert_eq!(leave.uid, None);
        assert!(matches!(leave.kind, RequestKind::RemoteLeave { .. }));
        let disconnect = Request::decode(&entry("classic", 78).bytes).unwrap();
        assert_eq!(
            disconnect,
            Request {
                uid: None,
                kind: RequestKind::RemoteDisconnect {
                    opts: SocketSelector {
                        rooms: vec!["room2".into()],
                        except: vec![]
                    },
                    close: true,
                },
            }
        );
        let own = Request::decode(&entry("classic", 80).bytes).unwrap();
        assert!(matches!(
            own.kind,
            RequestKind::RemoteDisconnect { close: false, .. }
        ));
    }

    #[test]
    fn server_side_emit_from_emitter_has_emitter_uid_and_no_request_id() {
        let req = Request::decode(&entry("classic", 76).bytes).unwrap();
        assert_eq!(req.uid.as_deref(), Some(EMITTER_UID));
        assert_eq!(
            req.kind,
            RequestKind::ServerSideEmit {
                request_id: None,
                data: vec![json!("em-sse"), json!(42), json!("answer")],
            }
        );
    }

    #[test]
    fn server_side_emit_with_ack_carries_request_id_and_ack_reply_carries_data() {
        let req = Request::decode(&entry("classic", 29).bytes).unwrap();
        assert_eq!(
            req.kind,
            RequestKind::ServerSideEmit {
                request_id: Some("_bPtmc".into()),
                data: vec![json!("ping-srv"), json!(1)],
            }
        );
        let resp = Response::decode(&entry("classic", 30).bytes).unwrap();
        assert_eq!(
            resp,
            Response::ServerSideEmitAck {
                request_id: "_bPtmc".into(),
                data: json!({"pong": "B"}),
            }
        );
    }

    #[test]
    fn broadcast_with_ack_request_is_msgpack_with_timeout_flag() {
        let p = entry("classic", 21);
        assert_eq!(p.bytes[0], 0x85);
        let req = Request::decode(&p.bytes).unwrap();
        let RequestKind::Broadcast {
            request_id,
            packet,
            opts,
        } = req.kind
        else {
            panic!("not a broadcast: {req:?}");
        };
        assert_eq!(request_id, "bVaM9_");
        assert_eq!(
            packet.data.data,
            vec![json!("question"), json!("are you there?")]
        );
        assert_eq!(packet.nsp, "/");
        assert_eq!(opts.rooms, vec!["room1"]);
        assert_eq!(opts.flags.timeout, Some(2000));
    }

    #[test]
    fn broadcast_ack_replies_are_a_json_client_count_then_msgpack_acks() {
        let count = entry("classic", 23);
        assert_eq!(count.bytes[0], b'{');
        assert_eq!(
            Response::decode(&count.bytes).unwrap(),
            Response::BroadcastClientCount {
                request_id: "bVaM9_".into(),
                client_count: 1
            }
        );
        let ack = entry("classic", 24);
        assert_eq!(ack.bytes[0], 0x83);
        assert_eq!(
            Response::decode(&ack.bytes).unwrap(),
            Response::BroadcastAck {
                request_id: "bVaM9_".into(),
                packet: Payload::new(json!("ack from carol")),
            }
        );
    }

    #[test]
    fn all_rooms_request_and_reply_decode() {
        let req = Request::decode(&entry("classic", 50).bytes).unwrap();
        assert_eq!(
            req.kind,
            RequestKind::AllRooms {
                request_id: "J91NX6".into()
            }
        );
        let Response::AllRooms { request_id, rooms } =
            Response::decode(&entry("classic", 51).bytes).unwrap()
        else {
            panic!("not all-rooms");
        };
        assert_eq!(request_id, "J91NX6");
        assert_eq!(
            rooms,
            [
                "EjiEoSYPlrmiUPDZAAAA",
                "room1",
                "DrXKtkwm3VNELOYIAAAB",
                "room2",
                "vip"
            ]
        );
    }

    #[test]
    fn fetch_reply_carries_sockets_with_handshake_rooms_and_data() {
        let req = Request::decode(&entry("classic", 43).bytes).unwrap();
        assert_eq!(
            req.kind,
            RequestKind::RemoteFetch {
                request_id: "Il9Er8".into(),
                opts: SocketSelector::default()
            }
        );
        let Response::RemoteFetch {
            request_id,
            sockets,
        } = Response::decode(&entry("classic", 44).bytes).unwrap()
        else {
            panic!("not a fetch reply");
        };
        assert_eq!(request_id, "Il9Er8");
        assert_eq!(sockets.len(), 2);
        let carol = &sockets[0];
        assert_eq!(carol.id, "EjiEoSYPlrmiUPDZAAAA");
        assert_eq!(carol.rooms, ["EjiEoSYPlrmiUPDZAAAA", "room1"]);
        assert_eq!(carol.data, json!({"node": "B", "user": "carol"}));
        let hs = &carol.handshake;
        assert_eq!(
            hs.time,
            "Tue Nov 24 2026 21:21:48 GMT+0000 (Coordinated Universal Time)"
        );
        assert_eq!(hs.address, "::ffff:127.0.0.1");
        assert!(!hs.xdomain && !hs.secure);
        assert_eq!(hs.issued, 1_795_555_308_812);
        assert_eq!(hs.url, "/socket.io/?EIO=4&transport=websocket");
        assert_eq!(hs.query["transport"], "websocket");
        assert_eq!(hs.auth["user"], "carol");
        assert_eq!(hs.headers["host"], "127.0.0.1:3102");
        assert!(hs.other.is_empty());
        assert_eq!(sockets[1].rooms, ["DrXKtkwm3VNELOYIAAAB", "room2", "room3"]);
    }

    #[test]
    fn handshake_time_is_written_like_node_date_to_string() {
        assert_eq!(
            js_date_string(1_795_555_308_812),
            "Tue Nov 24 2026 21:21:48 GMT+0000 (Coordinated Universal Time)"
        );
        assert_eq!(
            js_date_string(0),
            "Thu Jan 01 1970 00:00:00 GMT+0000 (Coordinated Universal Time)"
        );
        assert_eq!(
            js_date_string(-1),
            "Wed Dec 31 1969 23:59:59 GMT+0000 (Coordinated Universal Time)"
        );
        assert_eq!(
            js_date_string(-62_198_755_200_000),
            "Fri Jan 01 -0001 00:00:00 GMT+0000 (Coordinated Universal Time)"
        );
    }

    // ---- channels --------------------------------------------------------------------------

    #[test]
    fn channel_names_match_the_captured_subscriptions() {
        for (file, text) in [("classic", CLASSIC), ("classic-specific", CLASSIC_SPECIFIC)] {
            let mut checked = 0;
            for e in capture(file, text) {
                let args: Vec<&str> = match e["args"].as_array() {
                    Some(a) => a.iter().map(|v| v.as_str().unwrap()).collect(),
                    None => continue,
                };
                match e["cmd"].as_str().unwrap() {
                    "PSUBSCRIBE" => {
                        let nsp = if args[0].contains("/admin") {
                            "/admin"
                        } else {
                            "/"
                        };
                        assert_eq!(names().broadcast_pattern(nsp), args[0]);
                        checked += 1;
                    }
                    "SUBSCRIBE" => {
                        let nsp = if args[0].contains("/admin") {
                            "/admin"
                        } else {
                            "/"
                        };
                        let Ok(Channel::Response { uid: Some(uid), .. }) = names().parse(args[2])
                        else {
                            panic!("{file}: {args:?}");
                        };
                        assert_eq!(
                            args,
                            [
                                names().request(nsp),
                                names().response(nsp),
                                names().response_for(nsp, &uid)
                            ]
                        );
                        checked += 1;
                    }
                    _ => {}
                }
            }
            assert_eq!(checked, 8, "{file}");
        }
    }

    #[test]
    fn parse_recognises_every_channel_kind() {
        let n = ChannelNames::new("app");
        let cases = [
            (
                "app#/#",
                Channel::Broadcast {
                    nsp: "/".into(),
                    room: None,
                },
            ),
            (
                "app#/admin#r1#",
                Channel::Broadcast {
                    nsp: "/admin".into(),
                    room: Some("r1".into()),
                },
            ),
            (
                "app#/#a#b#",
                Channel::Broadcast {
                    nsp: "/".into(),
                    room: Some("a#b".into()),
                },
            ),
            (
                "app-request#/chat#",
                Channel::Request {
                    nsp: "/chat".into(),
                },
            ),
            (
                "app-response#/#",
                Channel::Response {
                    nsp: "/".into(),
                    uid: None,
                },
            ),
            (
                "app-response#/#Ab_9-z#",
                Channel::Response {
                    nsp: "/".into(),
                    uid: Some("Ab_9-z".into()),
                },
            ),
            ("app-ferrio#", Channel::Mirror),
        ];
        for (name, channel) in cases {
            assert_eq!(n.parse(name), Ok(channel.clone()), "{name}");
            assert_eq!(n.name(&channel), name);
        }
        for foreign in [
            "other#/#",
            "app",
            "app#",
            "app#/",
            "app#/#x",
            "app-request#",
            "app-ferrio#/#",
            "app-x#/#",
        ] {
            assert!(
                matches!(n.parse(foreign), Err(ClusterError::ForeignChannel { .. })),
                "{foreign}"
            );
        }
    }

    #[test]
    fn parse_in_namespace_matches_like_node_even_with_hash_in_names() {
        let n = names();
        assert_eq!(
            n.parse_in_namespace("/a#b", "socket.io#/a#b#room#x#"),
            Some(Channel::Broadcast {
                nsp: "/a#b".into(),
                room: Some("room#x".into())
            })
        );
        assert_eq!(
            n.parse_in_namespace("/a#b", "socket.io-response#/a#b#uid1#"),
            Some(Channel::Response {
                nsp: "/a#b".into(),
                uid: Some("uid1".into())
            })
        );
        assert_eq!(
            n.parse_in_namespace("/a#b", "socket.io-request#/a#b#"),
            Some(Channel::Request { nsp: "/a#b".into() })
        );
        assert_eq!(n.parse_in_namespace("/admin", "socket.io#/#"), None);
        assert_eq!(n.parse_in_namespace("/", "socket.io-ferrio#"), None);
    }

    #[test]
    fn broadcast_pattern_escapes_redis_glob_characters() {
        assert_eq!(names().broadcast_pattern("/org-*"), "socket.io#/org-\\*#*");
        assert_eq!(
            ChannelNames::new("a?[b]\\").broadcast_pattern("/"),
            "a\\?\\[b\\]\\\\#/#*"
        );
    }

    /// Redis glob with `*` and `?` only (what the Node adapter's patterns use).
    fn glob(pattern: &[u8], s: &[u8]) -> bool {
        match (pattern.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => glob(&pattern[1..], s) || (!s.is_empty() && glob(pattern, &s[1..])),
            (Some(b'?'), Some(_)) => glob(&pattern[1..], &s[1..]),
            (Some(p), Some(c)) if p == c => glob(&pattern[1..], &s[1..]),
            _ => false,
        }
    }

    #[test]
    fn mirror_channel_is_never_matched_by_a_node_pattern_or_subscription() {
        for prefix in ["socket.io", "app", "x-y"] {
            let n = ChannelNames::new(prefix);
            let mirror = n.mirror();
            for nsp in ["/", "/admin", "/*", "/?", "/-ferrio"] {
                // Node does not escape: its pattern is the raw `<key>#<nsp>#*`.
                let node_pattern = format!("{}*", n.broadcast(nsp));
                assert!(
                    !glob(node_pattern.as_bytes(), mirror.as_bytes()),
                    "{node_pattern}"
                );
                assert_ne!(mirror, n.request(nsp));
                assert_ne!(mirror, n.response(nsp));
                assert!(!mirror.starts_with(&n.response(nsp)));
            }
        }
    }

    #[test]
    fn one_room_broadcasts_use_the_room_channel_even_with_repeats() {
        let n = names();
        assert_eq!(n.broadcast_for_rooms("/", &[]), "socket.io#/#");
        assert_eq!(n.broadcast_for_rooms("/", &["r".into()]), "socket.io#/#r#");
        assert_eq!(
            n.broadcast_for_rooms("/", &["r".into(), "r".into()]),
            "socket.io#/#r#"
        );
        assert_eq!(
            n.broadcast_for_rooms("/", &["r".into(), "s".into()]),
            "socket.io#/#"
        );
    }

    #[test]
    fn repeated_rooms_are_written_once_like_a_node_set() {
        let msg = BroadcastMessage {
            uid: "u".into(),
            packet: BroadcastPacket::event("/", EventData::new(vec![json!("e")])),
            opts: BroadcastOptions {
                rooms: vec!["r".into(), "r".into()],
                except: vec!["x".into(), "y".into(), "x".into()],
                flags: BroadcastFlags::default(),
            },
        };
        let back = BroadcastMessage::decode(&msg.encode().unwrap()).unwrap();
        assert_eq!(back.opts.rooms, ["r"]);
        assert_eq!(back.opts.except, ["x", "y"]);
    }

    #[test]
    fn replies_go_to_the_specific_channel_only_when_asked_and_never_for_sse_acks() {
        let n = names();
        let fetch = Request {
            uid: Some("FoGlaV".into()),
            kind: RequestKind::RemoteFetch {
                request_id: "r".into(),
                opts: SocketSelector::default(),
            },
        };
        assert_eq!(n.reply_channel("/", &fetch, false), "socket.io-response#/#");
        assert_eq!(
            n.reply_channel("/", &fetch, true),
            "socket.io-response#/#FoGlaV#"
        );
        let sse = Request {
            uid: Some("FoGlaV".into()),
            kind: RequestKind::ServerSideEmit {
                request_id: Some("r".into()),
                data: vec![json!("e")],
            },
        };
        assert_eq!(n.reply_channel("/", &sse, true), "socket.io-response#/#");
        let anonymous = Request { uid: None, ..fetch };
        assert_eq!(
            n.reply_channel("/", &anonymous, true),
            "socket.io-response#/#"
        );
    }

    // ---- payload conversion ----------------------------------------------------------------

    #[test]
    fn event_data_encodes_numbers_strings_and_binary_exactly_like_notepack() {
        // Generated with notepack.io 3.0.1: encode([0, 1, 127, 128, 255, 256, 65535, 65536,
        // 4294967295, 4294967296, 2**53-1, -1, -32, -33, -128, -129, -32768, -32769,
        // -2147483648, -2147483649, 1.5, -0.25, 2.0, "x"*31, "y"*32, "z"*256,
        // {a:1, b:[true,false,null]}, [0..15], Buffer.alloc(300, 7), "hé€😀"]).
        let expected = [
            "dc001e 00 01 7f cc80 ccff cd0100 cdffff ce00010000 ceffffffff cf0000000100000000",
            "cf001fffffffffffff ff e0 d0df d080 d1ff7f d18000 d2ffff7fff d280000000",
            "d3ffffffff7fffffff cb3ff8000000000000 cbbfd0000000000000 02",
            &format!("bf{}", "78".repeat(31)),
            &format!("d920{}", "79".repeat(32)),
            &format!("da0100{}", "7a".repeat(256)),
            "82a16101a16293c3c2c0 dc0010 000102030405060708090a0b0c0d0e0f",
            &format!("c5012c{}", "07".repeat(300)),
            "aa68c3a9e282acf09f9880",
        ]
        .concat();
        let data = EventData {
            data: vec![
                json!(0),
                json!(1),
                json!(127),
                json!(128),
                json!(255),
                json!(256),
                json!(65535),
                json!(65536),
                json!(4_294_967_295_u64),
                json!(4_294_967_296_u64),
                json!(9_007_199_254_740_991_u64),
                json!(-1),
                json!(-32),
                json!(-33),
                json!(-128),
                json!(-129),
                json!(-32768),
                json!(-32769),
                json!(-2_147_483_648_i64),
                json!(-2_147_483_649_i64),
                json!(1.5),
                json!(-0.25),
                json!(2.0),
                json!("x".repeat(31)),
                json!("y".repeat(32)),
                json!("z".repeat(256)),
                json!({"a": 1, "b": [true, false, null]}),
                json!((0..16).collect::<Vec<_>>()),
                json!({"_placeholder": true, "num": 0}),
                json!("hé€😀"),
            ],
            attachments: vec![Bytes::from(vec![7u8; 300])],
        };
        let bytes = write_msgpack(&data.to_msgpack().unwrap()).unwrap();
        assert_eq!(hex(&bytes), hex(&unhex(&expected)));
        let back = EventData::from_msgpack(read_msgpack(&bytes).unwrap()).unwrap();
        assert_eq!(back.attachments, data.attachments);
        assert_eq!(
            back.data[22],
            json!(2),
            "an integral float is an integer in JavaScript"
        );
    }

    #[test]
    fn nested_binary_round_trips_keeping_key_order_and_numbering() {
        let data = EventData {
            data: vec![
                json!("upload"),
                json!({"z": 1, "a": {"_placeholder": true, "num": 0}, "m": [{"_placeholder": true, "num": 1}]}),
                json!({"_placeholder": true, "num": 2}),
            ],
            attachments: vec![
                Bytes::from_static(b"first"),
                Bytes::from_static(b""),
                Bytes::from_static(&[0, 1, 2]),
            ],
        };
        let msg = BroadcastMessage {
            uid: "node-1".into(),
            packet: BroadcastPacket::event("/chat", data.clone()),
            opts: BroadcastOptions::default(),
        };
        let back = BroadcastMessage::decode(&msg.encode().unwrap()).unwrap();
        assert_eq!(back, msg);
        assert_eq!(
            serde_json::to_string(&back.packet.data.data).unwrap(),
            r#"["upload",{"z":1,"a":{"_placeholder":true,"num":0},"m":[{"_placeholder":true,"num":1}]},{"_placeholder":true,"num":2}]"#
        );
    }

    #[test]
    fn attachments_are_numbered_in_document_order_on_decode() {
        // ["e", {"b": bin(1), "a": bin(2)}, bin(3)]
        let bytes = unhex("93 a165 82 a162 c40101 a161 c40102 c40103");
        let data = EventData::from_msgpack(read_msgpack(&bytes).unwrap()).unwrap();
        assert_eq!(
            Value::Array(data.data),
            json!(["e", {"b": {"_placeholder": true, "num": 0}, "a": {"_placeholder": true, "num": 1}}, {"_placeholder": true, "num": 2}])
        );
        assert_eq!(data.attachments, [&[1u8][..], &[2], &[3]]);
    }

    #[test]
    fn large_attachments_use_bin16_and_bin32() {
        for (len, marker) in [(255usize, 0xc4u8), (256, 0xc5), (65_536, 0xc6)] {
            let data = EventData {
                data: vec![json!("e"), json!({"_placeholder": true, "num": 0})],
                attachments: vec![Bytes::from(vec![9u8; len])],
            };
            let bytes = write_msgpack(&data.to_msgpack().unwrap()).unwrap();
            assert_eq!(bytes[3], marker, "len {len}");
            let back = EventData::from_msgpack(read_msgpack(&bytes).unwrap()).unwrap();
            assert_eq!(back, data);
        }
    }

    #[test]
    fn placeholder_without_matching_attachment_is_an_error() {
        for bad in [
            json!({"_placeholder": true, "num": 1}),
            json!({"_placeholder": true, "num": -1}),
            json!({"_placeholder": true}),
        ] {
            let data = EventData {
                data: vec![json!("e"), bad],
                attachments: vec![Bytes::from_static(b"x")],
            };
            assert!(matches!(
                data.to_msgpack(),
                Err(ClusterError::BadPlaceholder { attachments: 1, .. })
            ));
        }
        // `_placeholder` other than true is an ordinary object.
        let data = EventData::new(vec![json!({"_placeholder": false, "num": 5})]);
        assert!(data.to_msgpack().is_ok());
    }

    #[test]
    fn notepack_timestamps_decode_to_the_iso_strings_json_stringify_gives() {
        // notepack.io 3.0.1: encode([new Date(0), new Date(1795555308812), new Date(-1)])
        let bytes = unhex("93 d6ff00000000 d7ffc1988c006b05ffec c70cff3b8b87c0ffffffffffffffff");
        let data = EventData::from_msgpack(read_msgpack(&bytes).unwrap()).unwrap();
        assert_eq!(
            data.data,
            [
                json!("1970-01-01T00:00:00.000Z"),
                json!("2026-11-24T21:21:48.812Z"),
                json!("1969-12-31T23:59:59.999Z")
            ]
        );
        assert_eq!(
            js_date_json(-62_198_755_200_000.0),
            json!("-000001-01-01T00:00:00.000Z")
        );
        assert_eq!(
            js_date_json(253_402_300_800_000.0),
            json!("+010000-01-01T00:00:00.000Z")
        );
        assert_eq!(js_date_json(8.64e15), json!("+275760-09-13T00:00:00.000Z"));
        assert_eq!(js_date_json(8.64e15 + 1.0), Value::Null);
        assert_eq!(js_date_json(f64::NAN), Value::Null);
    }

    #[test]
    fn legacy_ext_zero_forms_decode_as_undefined_date_and_binary() {
        // [undefined, {k: undefined, j: 1}, old Date(1000), ArrayBuffer(01 02 03)]
        let bytes = unhex("94 d40000 82 a16b d40000 a16a 01 d700 00000000000003e8 c70300 010203");
        let data = EventData::from_msgpack(read_msgpack(&bytes).unwrap()).unwrap();
        assert_eq!(
            Value::Array(data.data),
            json!([null, {"j": 1}, "1970-01-01T00:00:01.000Z", {"_placeholder": true, "num": 0}])
        );
        assert_eq!(data.attachments, [&[1u8, 2, 3][..]]);
    }

    #[test]
    fn other_ext_types_decode_as_type_and_binary_pairs() {
        let bytes = unhex("91 d5 05 abcd");
        let data = EventData::from_msgpack(read_msgpack(&bytes).unwrap()).unwrap();
        assert_eq!(data.data, [json!([5, {"_placeholder": true, "num": 0}])]);
        assert_eq!(data.attachments, [&[0xab, 0xcd][..]]);
    }

    #[test]
    fn non_string_map_keys_take_their_javascript_names() {
        let bytes = unhex("91 84 01 a161 c3 a162 c0 a163 cb3ff8000000000000 a164");
        let data = EventData::from_msgpack(read_msgpack(&bytes).unwrap()).unwrap();
        assert_eq!(
            serde_json::to_string(&data.data).unwrap(),
            r#"[{"1":"a","true":"b","null":"c","1.5":"d"}]"#
        );
        let nested_key = unhex("91 81 90 01");
        assert_eq!(
            EventData::from_msgpack(read_msgpack(&nested_key).unwrap()),
            Err(ClusterError::UnsupportedKey)
        );
    }

    #[test]
    fn float_encoding_follows_javascript_numbers() {
        assert_eq!(js_number(3.0), json!(3));
        assert_eq!(js_number(-0.0), json!(0));
        assert_eq!(js_number(0.5), json!(0.5));
        assert_eq!(js_number(f64::INFINITY), Value::Null);
        assert_eq!(number_to_mp(&Number::from_f64(-3.0).unwrap()), Mp::from(-3));
        assert_eq!(
            number_to_mp(&Number::from_f64(1e300).unwrap()),
            Mp::F64(1e300)
        );
        let f32_bytes = unhex("91 ca3fc00000");
        let data = EventData::from_msgpack(read_msgpack(&f32_bytes).unwrap()).unwrap();
        assert_eq!(data.data, [json!(1.5)]);
    }

    // ---- key order independence -------------------------------------------------------------

    #[test]
    fn json_requests_decode_whatever_the_key_order() {
        let shuffled = br#"{"opts":{"except":["x"],"rooms":["room1"]},"type":5,"requestId":"I6O8Tf","uid":"FoGlaV"}"#;
        let req = Request::decode(shuffled).unwrap();
        assert_eq!(
            req,
            Request {
                uid: Some("FoGlaV".into()),
                kind: RequestKind::RemoteFetch {
                    request_id: "I6O8Tf".into(),
                    opts: SocketSelector {
                        rooms: vec!["room1".into()],
                        except: vec!["x".into()]
                    },
                },
            }
        );
        assert_eq!(
            String::from_utf8(req.encode().unwrap()).unwrap(),
            r#"{"uid":"FoGlaV","requestId":"I6O8Tf","type":5,"opts":{"rooms":["room1"],"except":["x"]}}"#
        );
        let reply = br#"{"clientCount":3,"requestId":"q","type":8}"#;
        assert_eq!(
            Response::decode(reply).unwrap(),
            Response::BroadcastClientCount {
                request_id: "q".into(),
                client_count: 3
            }
        );
    }

    #[test]
    fn msgpack_broadcast_decodes_whatever_the_key_order() {
        let reordered = Mp::Array(vec![
            Mp::from("u1"),
            mp_map(vec![
                ("nsp", Mp::from("/")),
                ("data", Mp::Array(vec![Mp::from("ev"), Mp::Binary(vec![1])])),
                ("type", Mp::from(2)),
            ]),
            mp_map(vec![
                (
                    "flags",
                    mp_map(vec![
                        ("compress", Mp::from(true)),
                        ("volatile", Mp::from(false)),
                    ]),
                ),
                ("except", Mp::Array(vec![])),
                ("rooms", Mp::Array(vec![Mp::from("r")])),
            ]),
        ]);
        let msg = BroadcastMessage::decode(&write_msgpack(&reordered).unwrap()).unwrap();
        assert_eq!(msg.packet.data.event(), Some("ev"));
        assert_eq!(msg.packet.data.attachments, [&[1u8][..]]);
        assert_eq!(msg.opts.rooms, ["r"]);
        assert_eq!(msg.opts.flags.volatile, Some(false));
        assert_eq!(msg.opts.flags.compress, Some(true));
    }

    #[test]
    fn repeated_keys_keep_the_last_value_like_a_javascript_object() {
        let req = Request::decode(br#"{"type":1,"requestId":"a","requestId":"b"}"#).unwrap();
        assert_eq!(req.request_id(), Some("b"));
        let flags = mp_map(vec![
            ("x", Mp::from(1)),
            ("volatile", Mp::from(false)),
            ("x", Mp::from(2)),
            ("volatile", Mp::from(true)),
        ]);
        let flags = BroadcastFlags::decode(flags).unwrap();
        assert_eq!(flags.volatile, Some(true));
        assert_eq!(flags.other, json!({"x": 2}).as_object().unwrap().clone());
    }

    #[test]
    fn maps_with_very_many_keys_decode_in_linear_time() {
        let mut entries: Vec<(Mp, Mp)> = (0..200_000)
            .map(|i| (Mp::from(format!("k{i}")), Mp::from(i)))
            .collect();
        entries.push((Mp::from("type"), Mp::from(1)));
        entries.push((Mp::from("requestId"), Mp::from("r")));
        let bytes = write_msgpack(&Mp::Map(entries)).unwrap();
        let started = std::time::Instant::now();
        let req = Request::decode(&bytes).unwrap();
        assert_eq!(req.request_id(), Some("r"));
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn broadcast_without_nsp_rooms_except_or_flags_takes_node_defaults() {
        let minimal = Mp::Array(vec![
            Mp::from("u"),
            mp_map(vec![
                ("type", Mp::from(2)),
                ("data", Mp::Array(vec![Mp::from("e")])),
            ]),
            Mp::Map(vec![]),
        ]);
        let msg = BroadcastMessage::decode(&write_msgpack(&minimal).unwrap()).unwrap();
        assert_eq!(msg.packet.nsp, "/");
        assert_eq!(msg.opts, BroadcastOptions::default());
    }

    #[test]
    fn numeric_room_names_are_read_as_their_javascript_strings() {
        let req =
            Request::decode(br#"{"type":2,"opts":{"rooms":[42],"except":[]},"rooms":[7,"x"]}"#)
                .unwrap();
        assert_eq!(
            req.kind,
            RequestKind::RemoteJoin {
                opts: SocketSelector {
                    rooms: vec!["42".into()],
                    except: vec![]
                },
                rooms: vec!["7".into(), "x".into()],
            }
        );
    }

    // ---- round trips ------------------------------------------------------------------------

    fn every_request() -> Vec<Request> {
        let sel = SocketSelector {
            rooms: vec!["a".into(), "b".into()],
            except: vec!["c".into()],
        };
        let kinds = vec![
            RequestKind::Sockets {
                request_id: "r0".into(),
                rooms: vec!["a".into()],
            },
            RequestKind::AllRooms {
                request_id: "r1".into(),
            },
            RequestKind::RemoteJoin {
                opts: sel.clone(),
                rooms: vec!["j".into()],
            },
            RequestKind::RemoteLeave {
                opts: sel.clone(),
                rooms: vec!["l".into()],
            },
            RequestKind::RemoteDisconnect {
                opts: sel.clone(),
                close: true,
            },
            RequestKind::LegacyRemoteJoin {
                request_id: "r2".into(),
                sid: "s".into(),
                room: "j".into(),
            },
            RequestKind::LegacyRemoteLeave {
                request_id: "r3".into(),
                sid: "s".into(),
                room: "l".into(),
            },
            RequestKind::LegacyRemoteDisconnect {
                request_id: "r4".into(),
                sid: "s".into(),
                close: false,
            },
            RequestKind::RemoteFetch {
                request_id: "r5".into(),
                opts: sel,
            },
            RequestKind::ServerSideEmit {
                request_id: None,
                data: vec![json!("e"), json!({"k": [1, 2.5]})],
            },
            RequestKind::ServerSideEmit {
                request_id: Some("r6".into()),
                data: vec![json!("e")],
            },
            RequestKind::Broadcast {
                request_id: "r7".into(),
                packet: BroadcastPacket::event(
                    "/",
                    EventData {
                        data: vec![json!("q"), json!({"_placeholder": true, "num": 0})],
                        attachments: vec![Bytes::from_static(b"bin")],
                    },
                ),
                opts: BroadcastOptions {
                    rooms: vec!["a".into()],
                    except: vec![],
                    flags: BroadcastFlags {
                        timeout: Some(5000),
                        ..BroadcastFlags::default()
                    },
                },
            },
        ];
        kinds
            .into_iter()
            .flat_map(|kind| {
                [
                    Request {
                        uid: Some("ferrio1".into()),
                        kind: kind.clone(),
                    },
                    Request { uid: None, kind },
                ]
            })
            .collect()
    }

    #[test]
    fn every_request_kind_round_trips_in_its_node_encoding() {
        for req in every_request() {
            let bytes = req.encode().unwrap();
            let json = req.request_type() != RequestType::Broadcast;
            assert_eq!(bytes[0] == b'{', json, "{req:?}");
            assert_eq!(Request::decode(&bytes).unwrap(), req);
        }
    }

    #[test]
    fn legacy_requests_use_the_pre_8_key_order() {
        let req = Request {
            uid: Some("u".into()),
            kind: RequestKind::LegacyRemoteJoin {
                request_id: "r".into(),
                sid: "s".into(),
                room: "x".into(),
            },
        };
        assert_eq!(
            String::from_utf8(req.encode().unwrap()).unwrap(),
            r#"{"uid":"u","requestId":"r","type":2,"sid":"s","room":"x"}"#
        );
    }

    #[test]
    fn every_response_kind_round_trips_in_its_node_encoding() {
        let responses = vec![
            Response::SocketIds {
                request_id: "a".into(),
                sockets: vec!["s1".into(), "s2".into()],
            },
            Response::AllRooms {
                request_id: "b".into(),
                rooms: vec!["r".into()],
            },
            Response::AllRooms {
                request_id: "b".into(),
                rooms: vec![],
            },
            Response::RemoteFetch {
                request_id: "c".into(),
                sockets: vec![],
            },
            Response::RemoteFetch {
                request_id: "c".into(),
                sockets: vec![RemoteSocket {
                    id: "sock".into(),
                    handshake: Handshake {
                        time: js_date_string(1_795_555_308_812),
                        issued: 1_795_555_308_812,
                        other: [("extra".to_owned(), json!(1))].into_iter().collect(),
                        ..Handshake::default()
                    },
                    rooms: vec!["sock".into()],
                    data: json!({"user": "x"}),
                }],
            },
            Response::Acknowledged {
                request_id: "d".into(),
            },
            Response::ServerSideEmitAck {
                request_id: "e".into(),
                data: json!([1, "two"]),
            },
            Response::BroadcastClientCount {
                request_id: "f".into(),
                client_count: 0,
            },
            Response::BroadcastAck {
                request_id: "g".into(),
                packet: Payload {
                    value: json!({"file": {"_placeholder": true, "num": 0}}),
                    attachments: vec![Bytes::from_static(b"\x00\xff")],
                },
            },
        ];
        for resp in responses {
            let bytes = resp.encode().unwrap();
            assert_eq!(
                bytes[0] == b'{',
                !matches!(resp, Response::BroadcastAck { .. })
            );
            assert_eq!(Response::decode(&bytes).unwrap(), resp);
        }
    }

    #[test]
    fn broadcast_ack_without_packet_decodes_as_null() {
        // notepack omits a key whose value is undefined: {type: 9, requestId: "g"}
        let bytes = write_msgpack(&mp_map(vec![
            ("type", Mp::from(9)),
            ("requestId", Mp::from("g")),
        ]))
        .unwrap();
        assert_eq!(
            Response::decode(&bytes).unwrap(),
            Response::BroadcastAck {
                request_id: "g".into(),
                packet: Payload::default()
            }
        );
    }

    #[test]
    fn flags_round_trip_with_unknown_flags_kept_in_order() {
        let mut other = Map::new();
        other.insert("zeta".into(), json!({"deep": [1]}));
        other.insert("alpha".into(), json!("x"));
        let msg = BroadcastMessage {
            uid: "u".into(),
            packet: BroadcastPacket::event("/", EventData::new(vec![json!("e")])),
            opts: BroadcastOptions {
                rooms: vec![],
                except: vec![],
                flags: BroadcastFlags {
                    volatile: Some(true),
                    compress: Some(false),
                    local: Some(false),
                    timeout: Some(1),
                    expect_single_response: Some(true),
                    other,
                },
            },
        };
        let back = BroadcastMessage::decode(&msg.encode().unwrap()).unwrap();
        assert_eq!(back, msg);
        assert_eq!(
            back.opts.flags.other.keys().collect::<Vec<_>>(),
            ["zeta", "alpha"]
        );
    }

    // ---- malformed input --------------------------------------------------------------------

    #[test]
    fn every_truncation_of_every_capture_is_an_error_not_a_panic() {
        for p in published() {
            let channel = names().parse(&p.channel).unwrap();
            for len in 0..p.bytes.len() {
                let cut = &p.bytes[..len];
                let failed = match channel {
                    Channel::Broadcast { .. } => BroadcastMessage::decode(cut).is_err(),
                    Channel::Request { .. } => Request::decode(cut).is_err(),
                    Channel::Response { .. } => Response::decode(cut).is_err(),
                    Channel::Mirror => unreachable!(),
                };
                assert!(failed, "{} #{} cut at {len}", p.file, p.index);
            }
        }
    }

    #[test]
    fn truncated_msgpack_is_a_msgpack_error_and_empty_is_empty() {
        let p = entry("classic", 11);
        assert!(matches!(
            BroadcastMessage::decode(&p.bytes[..40]),
            Err(ClusterError::Msgpack { .. })
        ));
        assert_eq!(BroadcastMessage::decode(&[]), Err(ClusterError::Empty));
        assert_eq!(Request::decode(&[]), Err(ClusterError::Empty));
        assert_eq!(Response::decode(&[]), Err(ClusterError::Empty));
        assert_eq!(MirrorMessage::decode(&[]), Err(ClusterError::Empty));
    }

    #[test]
    fn trailing_bytes_after_a_message_are_rejected_like_notepack() {
        let mut bytes = entry("classic", 11).bytes;
        bytes.extend_from_slice(&[0xc0, 0xc0]);
        assert_eq!(
            BroadcastMessage::decode(&bytes),
            Err(ClusterError::TrailingBytes { count: 2 })
        );
    }

    #[test]
    fn wrong_types_are_typed_errors() {
        let broadcast = |uid: Mp, packet: Mp, opts: Mp| {
            BroadcastMessage::decode(&write_msgpack(&Mp::Array(vec![uid, packet, opts])).unwrap())
        };
        let packet = || mp_map(vec![("type", Mp::from(2)), ("data", Mp::Array(vec![]))]);
        assert_eq!(
            broadcast(Mp::from(1), packet(), Mp::Map(vec![])),
            Err(ClusterError::WrongType {
                field: "broadcast[0]",
                expected: "string"
            })
        );
        assert_eq!(
            broadcast(
                Mp::from("u"),
                mp_map(vec![("type", Mp::from(2)), ("data", Mp::from("x"))]),
                Mp::Map(vec![])
            ),
            Err(ClusterError::WrongType {
                field: "packet.data",
                expected: "array"
            })
        );
        assert_eq!(
            broadcast(
                Mp::from("u"),
                mp_map(vec![("data", Mp::Array(vec![]))]),
                Mp::Map(vec![])
            ),
            Err(ClusterError::WrongType {
                field: "packet.type",
                expected: "packet type number"
            })
        );
        assert!(matches!(
            broadcast(
                Mp::from("u"),
                packet(),
                mp_map(vec![("rooms", Mp::from("room1"))])
            ),
            Err(ClusterError::WrongType {
                field: "opts.rooms",
                ..
            })
        ));
        assert!(matches!(
            broadcast(
                Mp::from("u"),
                packet(),
                mp_map(vec![("flags", mp_map(vec![("volatile", Mp::from("yes"))]))])
            ),
            Err(ClusterError::WrongType {
                field: "opts.flags.volatile",
                ..
            })
        ));
        assert!(matches!(
            broadcast(
                Mp::from("u"),
                packet(),
                mp_map(vec![("flags", mp_map(vec![("x", Mp::Binary(vec![1]))]))])
            ),
            Err(ClusterError::UnexpectedBinary {
                field: "opts.flags"
            })
        ));
        assert!(matches!(
            BroadcastMessage::decode(&write_msgpack(&Mp::Array(vec![Mp::from("u")])).unwrap()),
            Err(ClusterError::MissingField { .. })
        ));
        assert!(matches!(
            BroadcastMessage::decode(&write_msgpack(&Mp::from("x")).unwrap()),
            Err(ClusterError::WrongType {
                field: "broadcast",
                ..
            })
        ));
        assert_eq!(
            Request::decode(br#"{"type":"5","requestId":"r"}"#),
            Err(ClusterError::WrongType {
                field: "type",
                expected: "integer"
            })
        );
        assert_eq!(
            Request::decode(br#"{"uid":"u"}"#),
            Err(ClusterError::MissingField { field: "type" })
        );
        assert_eq!(
            Request::decode(br#"{"type":5,"requestId":"r"}"#),
            Err(ClusterError::MissingField { field: "opts" })
        );
        assert_eq!(
            Request::decode(br#"{"type":1,"requestId":7}"#),
            Err(ClusterError::WrongType {
                field: "requestId",
                expected: "string"
            })
        );
        assert!(matches!(
            Request::decode(br#"{"type":6,"data":"hello"}"#),
            Err(ClusterError::WrongType { field: "data", .. })
        ));
        assert!(matches!(
            Request::decode(br#"{"type":4,"opts":{},"close":"yes"}"#),
            Err(ClusterError::WrongType { field: "close", .. })
        ));
        assert!(matches!(
            Response::decode(br#"{"requestId":"r","sockets":"s"}"#),
            Err(ClusterError::WrongType {
                field: "sockets",
                ..
            })
        ));
        assert!(matches!(
            Response::decode(
                br#"{"requestId":"r","sockets":[{"id":"s","handshake":{"issued":"now"}}]}"#
            ),
            Err(ClusterError::WrongType {
                field: "handshake.issued",
                ..
            })
        ));
        assert_eq!(
            Response::decode(br#"{"rooms":[]}"#),
            Err(ClusterError::MissingField { field: "requestId" })
        );
        assert!(matches!(
            Request::decode(b"{not json"),
            Err(ClusterError::Json { .. })
        ));
        assert!(matches!(
            Request::decode(b"[1,2]"),
            Err(ClusterError::TrailingBytes { .. })
        ));
    }

    #[test]
    fn unknown_request_and_reply_types_are_typed_errors() {
        assert_eq!(
            Request::decode(br#"{"uid":"u","type":42}"#),
            Err(ClusterError::UnknownRequestType { code: 42 })
        );
        assert_eq!(
            Request::decode(br#"{"uid":"u","type":-1}"#),
            Err(ClusterError::UnknownRequestType { code: -1 })
        );
        // Replies arriving on the request channel are not requests (Node ignores them there).
        assert_eq!(
            Request::decode(br#"{"type":8,"requestId":"r","clientCount":1}"#),
            Err(ClusterError::UnknownRequestType { code: 8 })
        );
        assert_eq!(
            Response::decode(br#"{"type":5,"requestId":"r"}"#),
            Err(ClusterError::UnknownResponseType { code: 5 })
        );
    }

    #[test]
    fn invalid_utf8_strings_are_rejected() {
        let bytes = unhex("93 a2c328 80 80");
        assert_eq!(
            BroadcastMessage::decode(&bytes),
            Err(ClusterError::InvalidUtf8)
        );
    }

    #[test]
    fn deep_nesting_is_refused_without_overflowing_the_stack() {
        let mut deep = vec![0x93, 0xa1, b'u', 0x82, 0xa4];
        deep.extend_from_slice(b"type");
        deep.push(0x02);
        deep.push(0xa4);
        deep.extend_from_slice(b"data");
        deep.extend(std::iter::repeat_n(0x91, 10_000));
        deep.push(0xc0);
        deep.push(0x80);
        assert_eq!(BroadcastMessage::decode(&deep), Err(ClusterError::TooDeep));

        let mut ok = Value::Null;
        for _ in 0..MAX_NESTING - 1 {
            ok = Value::Array(vec![ok]);
        }
        let data = EventData::new(vec![ok.clone()]);
        let bytes = write_msgpack(&data.to_msgpack().unwrap()).unwrap();
        assert_eq!(
            EventData::from_msgpack(read_msgpack(&bytes).unwrap()).unwrap(),
            data
        );
        let too_deep = EventData::new(vec![Value::Array(vec![ok])]);
        assert_eq!(too_deep.to_msgpack(), Err(ClusterError::TooDeep));
    }

    #[test]
    fn huge_declared_lengths_fail_cleanly() {
        for tail in [
            "c6ffffffff00",
            "ddffffffff",
            "dfffffffff",
            "dbffffffff61",
            "c9ffffffff0100",
        ] {
            let bytes = unhex(&format!("93 a175 82 a474797065 02 a464617461 91 {tail}"));
            assert!(BroadcastMessage::decode(&bytes).is_err(), "{tail}");
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_any_decoder() {
        // A small deterministic generator, biased toward msgpack markers and `{`.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let seeds: Vec<Vec<u8>> = published().into_iter().map(|p| p.bytes).collect();
        for round in 0..20_000 {
            let mut bytes = seeds[round % seeds.len()].clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() as usize) % bytes.len();
                bytes[at] = next() as u8;
            }
            let _ = BroadcastMessage::decode(&bytes);
            let _ = Request::decode(&bytes);
            let _ = Response::decode(&bytes);
            let _ = MirrorMessage::decode(&bytes);
        }
    }

    // ---- room mirror ------------------------------------------------------------------------

    fn every_mirror_message() -> Vec<MirrorMessage> {
        vec![
            MirrorMessage::Hello {
                node: "n1".into(),
                namespaces: vec!["/".into(), "/org-1".into()],
                interval_ms: 5000,
            },
            MirrorMessage::Heartbeat {
                node: "n1".into(),
                namespaces: vec!["/".into()],
                interval_ms: 5000,
                seq: 42,
            },
            MirrorMessage::Goodbye { node: "n1".into() },
            MirrorMessage::CreateRoom {
                node: "n1".into(),
                seq: 7,
                nsp: "/".into(),
                room: "r".into(),
            },
            MirrorMessage::DeleteRoom {
                node: "n1".into(),
                seq: 10,
                nsp: "/".into(),
                room: "r".into(),
            },
            MirrorMessage::JoinRoom {
                node: "n1".into(),
                seq: 8,
                nsp: "/".into(),
                room: "r".into(),
                socket: "s".into(),
            },
            MirrorMessage::LeaveRoom {
                node: "n1".into(),
                seq: 9,
                nsp: "/".into(),
                room: "r".into(),
                socket: "s".into(),
            },
            MirrorMessage::SyncRequest { node: "n2".into() },
            MirrorMessage::Snapshot {
                node: "n1".into(),
                seq: 9,
                namespaces: vec![MirrorNamespace {
                    nsp: "/".into(),
                    rooms: vec![MirrorRoom {
                        room: "r".into(),
                        members: vec!["s".into()],
                    }],
                }],
            },
        ]
    }

    #[test]
    fn mirror_messages_have_the_documented_json_form() {
        let encoded: Vec<String> = every_mirror_message()
            .iter()
            .map(|m| String::from_utf8(m.encode().unwrap()).unwrap())
            .collect();
        assert_eq!(
            encoded,
            [
                r#"{"v":1,"type":"hello","node":"n1","namespaces":["/","/org-1"],"interval_ms":5000}"#,
                r#"{"v":1,"type":"heartbeat","node":"n1","namespaces":["/"],"interval_ms":5000,"seq":42}"#,
                r#"{"v":1,"type":"goodbye","node":"n1"}"#,
                r#"{"v":1,"type":"create-room","node":"n1","seq":7,"nsp":"/","room":"r"}"#,
                r#"{"v":1,"type":"delete-room","node":"n1","seq":10,"nsp":"/","room":"r"}"#,
                r#"{"v":1,"type":"join-room","node":"n1","seq":8,"nsp":"/","room":"r","socket":"s"}"#,
                r#"{"v":1,"type":"leave-room","node":"n1","seq":9,"nsp":"/","room":"r","socket":"s"}"#,
                r#"{"v":1,"type":"sync-request","node":"n2"}"#,
                r#"{"v":1,"type":"snapshot","node":"n1","seq":9,"namespaces":[{"nsp":"/","rooms":[{"room":"r","members":["s"]}]}]}"#,
            ]
        );
    }

    #[test]
    fn every_mirror_message_round_trips() {
        for msg in every_mirror_message() {
            let back = MirrorMessage::decode(&msg.encode().unwrap()).unwrap();
            assert_eq!(back.node(), msg.node());
            assert_eq!(back, msg);
        }
    }

    #[test]
    fn mirror_decoding_is_key_order_independent_and_ignores_unknown_fields() {
        let msg = MirrorMessage::decode(
            br#"{"socket":"s","room":"r","future":true,"nsp":"/","seq":8,"node":"n1","type":"join-room","v":1}"#,
        )
        .unwrap();
        assert_eq!(
            msg,
            MirrorMessage::JoinRoom {
                node: "n1".into(),
                seq: 8,
                nsp: "/".into(),
                room: "r".into(),
                socket: "s".into()
            }
        );
    }

    #[test]
    fn mirror_rejects_other_versions_unknown_types_and_bad_fields() {
        assert_eq!(
            MirrorMessage::decode(br#"{"v":2,"type":"goodbye","node":"n"}"#),
            Err(ClusterError::UnsupportedMirrorVersion { version: 2 })
        );
        assert_eq!(
            MirrorMessage::decode(br#"{"type":"goodbye","node":"n"}"#),
            Err(ClusterError::MissingField { field: "v" })
        );
        assert_eq!(
            MirrorMessage::decode(br#"{"v":1,"type":"teleport","node":"n"}"#),
            Err(ClusterError::UnknownMirrorType {
                name: "teleport".into()
            })
        );
        assert!(matches!(
            MirrorMessage::decode(br#"{"v":1,"type":"join-room","node":"n"}"#),
            Err(ClusterError::InvalidMirror { .. })
        ));
        assert!(matches!(
            MirrorMessage::decode(br#"{"v":1,"type":"goodbye","node":5}"#),
            Err(ClusterError::InvalidMirror { .. })
        ));
        assert!(matches!(
            MirrorMessage::decode(b"[1]"),
            Err(ClusterError::WrongType { .. })
        ));
        assert!(matches!(
            MirrorMessage::decode(b"\x93"),
            Err(ClusterError::Json { .. })
        ));
    }

    #[test]
    fn errors_print_the_field_at_fault() {
        let err = ClusterError::WrongType {
            field: "opts.rooms",
            expected: "array of room names",
        };
        assert_eq!(
            err.to_string(),
            "field opts.rooms: expected array of room names"
        );
        assert_eq!(
            ClusterError::UnknownRequestType { code: 42 }.to_string(),
            "unknown request type 42"
        );
    }
}
