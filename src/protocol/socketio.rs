//! Socket.IO v5 packet codec: the application packets carried inside Engine.IO messages,
//! their validation, and the reassembly of binary packets from their attachments.
//!
//! This module owns the text after an Engine.IO message's `4`: it turns it into a typed
//! [`Packet`] and back. A binary packet arrives as one text message followed by N binary
//! messages; [`Decoder`] is the small state a connection keeps while they arrive, so "waiting
//! for attachments" is an explicit value ([`Decoded::NeedMore`]), not an error. No IO here.
//!
//! # Format
//!
//! ```text
//! <type>[<attachments>-][<namespace>,][<ack id>][<JSON payload>]
//!
//! 0                                   CONNECT to "/"
//! 0/admin,{"token":"t"}               CONNECT to "/admin" with an auth payload
//! 2/admin,12["chat"]                  EVENT "chat" in "/admin", ack id 12
//! 312["ok"]                           ACK 12
//! 4{"message":"Invalid namespace"}    CONNECT_ERROR
//! 51-["upload",{"_placeholder":true,"num":0}]   BINARY_EVENT, then 1 binary message
//! ```
//!
//! The namespace is written only when it is not `/`; it starts with `/` and runs to the first
//! `,` or to the end of the text. Binary values are replaced by [`placeholder`]s whose `num`
//! is the index of the binary message that follows.

use std::fmt;
use std::fmt::Write as _;

use bytes::Bytes;
use serde_json::{Map, Value};

/// Most attachments one binary packet may announce. A hostile `999999-` would otherwise make
/// the connection wait for (and buffer) that many binary messages.
pub const MAX_ATTACHMENTS: usize = 64;

/// The Socket.IO packet types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketKind {
    /// Join a namespace (client), or accept the join (server).
    Connect = 0,
    /// Leave a namespace.
    Disconnect = 1,
    /// An event: `["name", args…]`.
    Event = 2,
    /// The answer to an event that carried an ack id.
    Ack = 3,
    /// The server refuses a CONNECT.
    ConnectError = 4,
    /// An event with binary attachments.
    BinaryEvent = 5,
    /// An ack with binary attachments.
    BinaryAck = 6,
}

impl PacketKind {
    /// The kind written as `digit` (an ASCII byte), if any.
    pub fn from_digit(digit: u8) -> Option<PacketKind> {
        Some(match digit {
            b'0' => PacketKind::Connect,
            b'1' => PacketKind::Disconnect,
            b'2' => PacketKind::Event,
            b'3' => PacketKind::Ack,
            b'4' => PacketKind::ConnectError,
            b'5' => PacketKind::BinaryEvent,
            b'6' => PacketKind::BinaryAck,
            _ => return None,
        })
    }

    /// The ASCII digit that starts this kind's packets.
    pub fn digit(self) -> char {
        match self {
            PacketKind::Connect => '0',
            PacketKind::Disconnect => '1',
            PacketKind::Event => '2',
            PacketKind::Ack => '3',
            PacketKind::ConnectError => '4',
            PacketKind::BinaryEvent => '5',
            PacketKind::BinaryAck => '6',
        }
    }

    /// True for the kinds followed by binary attachments (and written with `N-`).
    pub fn is_binary(self) -> bool {
        matches!(self, PacketKind::BinaryEvent | PacketKind::BinaryAck)
    }
}

/// One Socket.IO packet (without its binary attachments).
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    /// What the packet does.
    pub kind: PacketKind,
    /// The namespace it belongs to; `/` when the wire leaves it out.
    pub ns: String,
    /// The ack id: an EVENT asking for an answer, or the ACK giving it.
    pub id: Option<u64>,
    /// The JSON payload, validated by [`decode`]: for (Binary)Event a non-empty array whose
    /// first element is the event name (a string); for (Binary)Ack an array; for Connect an
    /// object or nothing; for ConnectError an object or a string; for Disconnect nothing.
    pub data: Option<Value>,
    /// How many binary messages follow this packet (`N-`); 0 unless the kind is binary.
    pub attachments: usize,
}

impl Packet {
    /// An event `data` (name first) in `ns`; a BINARY_EVENT when `attachments > 0`, in which
    /// case `data` holds the [`placeholder`]s.
    pub fn event(ns: &str, data: Vec<Value>, id: Option<u64>, attachments: usize) -> Packet {
        Packet {
            kind: if attachments > 0 {
                PacketKind::BinaryEvent
            } else {
                PacketKind::Event
            },
            ns: ns.to_owned(),
            id,
            data: Some(Value::Array(data)),
            attachments,
        }
    }

    /// The answer `data` to the event with ack id `id`; a BINARY_ACK when `attachments > 0`.
    pub fn ack(ns: &str, data: Vec<Value>, id: u64, attachments: usize) -> Packet {
        Packet {
            kind: if attachments > 0 {
                PacketKind::BinaryAck
            } else {
                PacketKind::Ack
            },
            ns: ns.to_owned(),
            id: Some(id),
            data: Some(Value::Array(data)),
            attachments,
        }
    }

    /// The server's acceptance of a CONNECT: `0{"sid":"…"}`, `sid` being the socket id.
    pub fn connect_ok(ns: &str, sid: &str) -> Packet {
        let mut obj = Map::new();
        obj.insert("sid".into(), Value::String(sid.to_owned()));
        Packet::plain(PacketKind::Connect, ns, Some(Value::Object(obj)))
    }

    /// Like [`Packet::connect_ok`], with the private session id of connection state recovery:
    /// `0{"sid":"…","pid":"…"}`.
    pub fn connect_ok_with_pid(ns: &str, sid: &str, pid: &str) -> Packet {
        let mut obj = Map::new();
        obj.insert("sid".into(), Value::String(sid.to_owned()));
        obj.insert("pid".into(), Value::String(pid.to_owned()));
        Packet::plain(PacketKind::Connect, ns, Some(Value::Object(obj)))
    }

    /// The refusal of a CONNECT: `4{"message":"…"}`.
    pub fn connect_error(ns: &str, message: &str) -> Packet {
        let mut obj = Map::new();
        obj.insert("message".into(), Value::String(message.to_owned()));
        Packet::plain(PacketKind::ConnectError, ns, Some(Value::Object(obj)))
    }

    /// Leaving `ns`: `1` or `1/admin,`.
    pub fn disconnect(ns: &str) -> Packet {
        Packet::plain(PacketKind::Disconnect, ns, None)
    }

    fn plain(kind: PacketKind, ns: &str, data: Option<Value>) -> Packet {
        Packet {
            kind,
            ns: ns.to_owned(),
            id: None,
            data,
            attachments: 0,
        }
    }

    /// The event name of a (Binary)Event, `None` for other kinds.
    pub fn event_name(&self) -> Option<&str> {
        match self.kind {
            PacketKind::Event | PacketKind::BinaryEvent => self.data.as_ref()?.get(0)?.as_str(),
            _ => None,
        }
    }

    /// The event's arguments (everything after the name), or the ack's arguments; empty for
    /// other kinds.
    pub fn args(&self) -> &[Value] {
        let all = match self.data.as_ref() {
            Some(Value::Array(items)) => items.as_slice(),
            _ => return &[],
        };
        match self.kind {
            PacketKind::Event | PacketKind::BinaryEvent => all.get(1..).unwrap_or(&[]),
            PacketKind::Ack | PacketKind::BinaryAck => all,
            _ => &[],
        }
    }
}

/// Why a text is not a valid Socket.IO packet. Any of them closes the connection with
/// reason "parse error".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SioError {
    /// No text at all.
    Empty,
    /// The first character is not a type digit 0–6.
    UnknownType,
    /// A binary kind without a valid `N-` (missing, not digits, or 0).
    BadAttachmentCount,
    /// A namespace with control characters (they would break polling framing when echoed).
    BadNamespace,
    /// An ack id that overflows u64, or letters where the ack id or payload should start.
    BadAckId,
    /// The payload is not JSON, or JSON followed by more text.
    BadJson,
    /// Valid JSON of the wrong shape for the kind (event not a non-empty array with a string
    /// name, connect payload not an object, payload on a disconnect, …).
    BadPayload,
    /// A binary message arrived while no binary packet was waiting for attachments.
    UnexpectedBinary,
    /// A text message arrived while a binary packet was still waiting for attachments.
    UnexpectedText,
    /// More than [`MAX_ATTACHMENTS`] attachments announced.
    TooManyAttachments,
    /// A placeholder without a valid `num`, or with `num` >= the attachment count.
    BadPlaceholder,
}

impl fmt::Display for SioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SioError::Empty => "empty packet",
            SioError::UnknownType => "unknown packet type",
            SioError::BadAttachmentCount => "illegal attachment count",
            SioError::BadNamespace => "illegal namespace",
            SioError::BadAckId => "illegal ack id",
            SioError::BadJson => "invalid JSON payload",
            SioError::BadPayload => "invalid payload for packet type",
            SioError::UnexpectedBinary => "unexpected binary attachment",
            SioError::UnexpectedText => "text packet while attachments are pending",
            SioError::TooManyAttachments => "too many attachments",
            SioError::BadPlaceholder => "illegal attachment placeholder",
        })
    }
}

impl std::error::Error for SioError {}

/// Decodes one Socket.IO packet from an Engine.IO message's text (without its leading `4`).
///
/// # Format
///
/// `<type>[<attachments>-][<namespace>,][<ack id>][<JSON payload>]`:
/// - `type`: one digit, 0–6;
/// - `attachments-`: binary kinds only, decimal, 1..=[`MAX_ATTACHMENTS`];
/// - `namespace,`: present when the next character is `/`; runs to the first `,`, or to the
///   end of the text (`0/custom` is a CONNECT to `/custom` without payload);
/// - `ack id`: decimal digits, fitting a u64;
/// - `JSON payload`: the rest of the text, one JSON value, shape checked per kind as
///   socket.io-parser 4.x does (CONNECT: object or none; DISCONNECT: none; CONNECT_ERROR:
///   object or string; EVENT: array with a string first; ACK: array). Stricter than that
///   parser: an EVENT or ACK must have a payload, event names must be strings, and a binary
///   packet's placeholders must point at one of its attachments.
///
/// Reserved event names (`connect`, …) are not refused here; see [`is_reserved_event`].
/// An ACK without an ack id is accepted; it answers nothing.
pub fn decode(text: &str) -> Result<Packet, SioError> {
    let first = *text.as_bytes().first().ok_or(SioError::Empty)?;
    let kind = PacketKind::from_digit(first).ok_or(SioError::UnknownType)?;
    // The first byte is an ASCII digit, so 1 is a char boundary; so are the positions below,
    // which all follow ASCII bytes.
    let mut rest = &text[1..];

    let mut attachments = 0;
    if kind.is_binary() {
        let digits = ascii_digits(rest);
        if digits == 0 || rest.as_bytes().get(digits) != Some(&b'-') {
            return Err(SioError::BadAttachmentCount);
        }
        // Only digits, so a parse failure is an overflow.
        attachments = rest[..digits]
            .parse::<usize>()
            .map_err(|_| SioError::TooManyAttachments)?;
        if attachments == 0 {
            return Err(SioError::BadAttachmentCount);
        }
        if attachments > MAX_ATTACHMENTS {
            return Err(SioError::TooManyAttachments);
        }
        rest = &rest[digits + 1..];
    }

    let mut ns = "/";
    if rest.starts_with('/') {
        match rest.find(',') {
            Some(comma) => {
                ns = &rest[..comma];
                rest = &rest[comma + 1..];
            }
            None => {
                ns = rest;
                rest = "";
            }
        }
        if ns.chars().any(char::is_control) {
            return Err(SioError::BadNamespace);
        }
    }

    let digits = ascii_digits(rest);
    let id = if digits > 0 {
        Some(
            rest[..digits]
                .parse::<u64>()
                .map_err(|_| SioError::BadAckId)?,
        )
    } else {
        None
    };
    rest = &rest[digits..];

    let data = if rest.is_empty() {
        None
    } else {
        match serde_json::from_str::<Value>(rest) {
            Ok(value) => Some(value),
            // `42abc[…]`: garbage where the ack id or the payload should start.
            Err(_) if rest.starts_with(|c: char| c.is_ascii_alphanumeric()) => {
                return Err(SioError::BadAckId)
            }
            Err(_) => return Err(SioError::BadJson),
        }
    };

    if !payload_fits(kind, data.as_ref()) {
        return Err(SioError::BadPayload);
    }
    if let Some(value) = &data {
        if kind.is_binary() {
            validate_placeholders(value, attachments)?;
        }
    }

    Ok(Packet {
        kind,
        ns: ns.to_owned(),
        id,
        data,
        attachments,
    })
}

/// Number of leading ASCII digits of `s`.
fn ascii_digits(s: &str) -> usize {
    s.bytes().take_while(u8::is_ascii_digit).count()
}

/// Whether `data` is a payload `kind` may carry.
fn payload_fits(kind: PacketKind, data: Option<&Value>) -> bool {
    match kind {
        PacketKind::Connect => matches!(data, None | Some(Value::Object(_))),
        PacketKind::Disconnect => data.is_none(),
        PacketKind::ConnectError => matches!(data, Some(Value::Object(_) | Value::String(_))),
        PacketKind::Event | PacketKind::BinaryEvent => match data {
            Some(Value::Array(items)) => matches!(items.first(), Some(Value::String(_))),
            _ => false,
        },
        PacketKind::Ack | PacketKind::BinaryAck => matches!(data, Some(Value::Array(_))),
    }
}

/// Encodes a packet as the text of an Engine.IO message (without the leading `4`; see
/// `engineio::message_frame`).
///
/// # Format
///
/// As in [`decode`]: `N-` for binary kinds, the namespace and `,` unless it is `/` (or
/// empty), the ack id, then compact JSON with object keys in their original order.
pub fn encode(p: &Packet) -> String {
    let mut out = String::with_capacity(16 + p.ns.len());
    out.push(p.kind.digit());
    // Writing to a String cannot fail.
    if p.kind.is_binary() {
        let _ = write!(out, "{}-", p.attachments);
    }
    if !p.ns.is_empty() && p.ns != "/" {
        out.push_str(&p.ns);
        out.push(',');
    }
    if let Some(id) = p.id {
        let _ = write!(out, "{id}");
    }
    if let Some(data) = &p.data {
        let _ = write!(out, "{data}");
    }
    out
}

/// Whether a client may not emit an event with this name.
pub fn is_reserved_event(name: &str) -> bool {
    matches!(
        name,
        "connect"
            | "connect_error"
            | "disconnect"
            | "disconnecting"
            | "newListener"
            | "removeListener"
    )
}

/// The JSON that stands for the `num`-th attachment: `{"_placeholder":true,"num":N}`.
pub fn placeholder(num: usize) -> Value {
    let mut obj = Map::new();
    obj.insert("_placeholder".into(), Value::Bool(true));
    obj.insert("num".into(), Value::from(num));
    Value::Object(obj)
}

/// If `value` is a placeholder (an object with `"_placeholder": true`), its `num` when that
/// is a non-negative integer (`Some(None)` when it is not).
fn as_placeholder(value: &Value) -> Option<Option<u64>> {
    let obj = value.as_object()?;
    if obj.get("_placeholder") != Some(&Value::Bool(true)) {
        return None;
    }
    Some(obj.get("num").and_then(Value::as_u64))
}

/// How many placeholders `value` holds (a placeholder's own fields are not searched).
pub fn count_placeholders(value: &Value) -> usize {
    let mut count = 0;
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        if as_placeholder(v).is_some() {
            count += 1;
            continue;
        }
        match v {
            Value::Array(items) => stack.extend(items.iter()),
            Value::Object(obj) => stack.extend(obj.values()),
            _ => {}
        }
    }
    count
}

/// Checks that every placeholder in `value` has an integer `num` below `attachments`, as
/// socket.io-parser does when it puts the attachments back. Iterative, so deep JSON built by
/// application code cannot overflow the stack.
pub fn validate_placeholders(value: &Value, attachments: usize) -> Result<(), SioError> {
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match as_placeholder(v) {
            Some(Some(num)) if num < attachments as u64 => continue,
            Some(_) => return Err(SioError::BadPlaceholder),
            None => {}
        }
        match v {
            Value::Array(items) => stack.extend(items.iter()),
            Value::Object(obj) => stack.extend(obj.values()),
            _ => {}
        }
    }
    Ok(())
}

/// Holds a binary packet while its attachments arrive.
#[derive(Debug, Clone, PartialEq)]
pub struct PartialBinary {
    /// The text part; `packet.attachments` says how many binaries to wait for.
    pub packet: Packet,
    /// The attachments received so far, in order.
    pub bins: Vec<Bytes>,
}

impl PartialBinary {
    /// Starts waiting for `p.attachments` binaries.
    pub fn new(p: Packet) -> Self {
        let bins = Vec::with_capacity(p.attachments.min(MAX_ATTACHMENTS));
        PartialBinary { packet: p, bins }
    }

    /// Adds the next attachment; true when all have arrived. Attachments beyond the
    /// announced count are dropped.
    pub fn push(&mut self, b: Bytes) -> bool {
        if !self.is_complete() {
            self.bins.push(b);
        }
        self.is_complete()
    }

    /// Whether every announced attachment has arrived.
    pub fn is_complete(&self) -> bool {
        self.bins.len() >= self.packet.attachments
    }

    /// The packet and its attachments, in order.
    pub fn into_parts(self) -> (Packet, Vec<Bytes>) {
        (self.packet, self.bins)
    }
}

/// What feeding a message to a [`Decoder`] produced.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    /// A complete packet and its attachments (empty for text packets).
    Packet(Packet, Vec<Bytes>),
    /// A binary packet is waiting for more attachments; not an error.
    NeedMore,
}

/// Decoder state kept by a connection: feed it Engine.IO text and binary messages in order,
/// get complete packets.
///
/// After an error the decoder is empty again; the connection is expected to close anyway.
#[derive(Debug, Default)]
pub struct Decoder {
    /// The binary packet whose attachments are still arriving, if any.
    pending: Option<PartialBinary>,
}

impl Decoder {
    /// A decoder waiting for nothing.
    pub fn new() -> Self {
        Decoder::default()
    }

    /// Whether a binary packet is waiting for attachments.
    pub fn is_waiting(&self) -> bool {
        self.pending.is_some()
    }

    /// Feeds the text of an Engine.IO message (without its `4`).
    ///
    /// A binary packet makes the decoder wait ([`Decoded::NeedMore`]); a text message while it
    /// waits is [`SioError::UnexpectedText`].
    pub fn feed_text(&mut self, text: &str) -> Result<Decoded, SioError> {
        if self.pending.take().is_some() {
            return Err(SioError::UnexpectedText);
        }
        let packet = decode(text)?;
        if packet.kind.is_binary() {
            self.pending = Some(PartialBinary::new(packet));
            Ok(Decoded::NeedMore)
        } else {
            Ok(Decoded::Packet(packet, Vec::new()))
        }
    }

    /// Feeds an Engine.IO binary message: the next attachment of the waiting packet.
    pub fn feed_binary(&mut self, b: Bytes) -> Result<Decoded, SioError> {
        let Some(mut partial) = self.pending.take() else {
            return Err(SioError::UnexpectedBinary);
        };
        if partial.push(b) {
            let (packet, bins) = partial.into_parts();
            Ok(Decoded::Packet(packet, bins))
        } else {
            self.pending = Some(partial);
            Ok(Decoded::NeedMore)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    fn packet(
        kind: PacketKind,
        ns: &str,
        id: Option<u64>,
        data: Option<Value>,
        attachments: usize,
    ) -> Packet {
        Packet {
            kind,
            ns: ns.into(),
            id,
            data,
            attachments,
        }
    }

    /// Wire text and the packet it stands for; each is checked both ways.
    fn vectors() -> Vec<(&'static str, Packet)> {
        use PacketKind::*;
        vec![
            ("0", packet(Connect, "/", None, None, 0)),
            (
                r#"0/admin,{"token":"t"}"#,
                packet(Connect, "/admin", None, Some(json!({"token": "t"})), 0),
            ),
            ("0/custom,", packet(Connect, "/custom", None, None, 0)),
            (
                r#"0{"sid":"abc"}"#,
                packet(Connect, "/", None, Some(json!({"sid": "abc"})), 0),
            ),
            ("1", packet(Disconnect, "/", None, None, 0)),
            ("1/admin,", packet(Disconnect, "/admin", None, None, 0)),
            (
                r#"2["chat","hi"]"#,
                packet(Event, "/", None, Some(json!(["chat", "hi"])), 0),
            ),
            (
                r#"212["chat","hi"]"#,
                packet(Event, "/", Some(12), Some(json!(["chat", "hi"])), 0),
            ),
            (
                r#"2/admin,12["chat"]"#,
                packet(Event, "/admin", Some(12), Some(json!(["chat"])), 0),
            ),
            (
                r#"312["ok"]"#,
                packet(Ack, "/", Some(12), Some(json!(["ok"])), 0),
            ),
            (
                "3/admin,0[]",
                packet(Ack, "/admin", Some(0), Some(json!([])), 0),
            ),
            (
                r#"4{"message":"Invalid namespace"}"#,
                packet(
                    ConnectError,
                    "/",
                    None,
                    Some(json!({"message": "Invalid namespace"})),
                    0,
                ),
            ),
            (
                r#"4/random,{"message":"Invalid namespace"}"#,
                packet(
                    ConnectError,
                    "/random",
                    None,
                    Some(json!({"message": "Invalid namespace"})),
                    0,
                ),
            ),
            (
                r#"4"not authorized""#,
                packet(ConnectError, "/", None, Some(json!("not authorized")), 0),
            ),
            (
                r#"51-["upload",{"_placeholder":true,"num":0}]"#,
                packet(
                    BinaryEvent,
                    "/",
                    None,
                    Some(json!(["upload", {"_placeholder": true, "num": 0}])),
                    1,
                ),
            ),
            (
                r#"61-12[{"_placeholder":true,"num":0}]"#,
                packet(
                    BinaryAck,
                    "/",
                    Some(12),
                    Some(json!([{"_placeholder": true, "num": 0}])),
                    1,
                ),
            ),
            (
                r#"52-789["message-with-ack",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
                packet(
                    BinaryEvent,
                    "/",
                    Some(789),
                    Some(json!([
                        "message-with-ack",
                        {"_placeholder": true, "num": 0},
                        {"_placeholder": true, "num": 1}
                    ])),
                    2,
                ),
            ),
            (
                r#"52-/admin,["two",{"_placeholder":true,"num":1},{"_placeholder":true,"num":0}]"#,
                packet(
                    BinaryEvent,
                    "/admin",
                    None,
                    Some(json!([
                        "two",
                        {"_placeholder": true, "num": 1},
                        {"_placeholder": true, "num": 0}
                    ])),
                    2,
                ),
            ),
        ]
    }

    #[test]
    fn wire_vectors_decode_to_expected_packets() {
        for (wire, expected) in vectors() {
            assert_eq!(decode(wire).unwrap(), expected, "decoding {wire}");
        }
    }

    #[test]
    fn packets_encode_to_exact_wire_text() {
        for (wire, p) in vectors() {
            assert_eq!(encode(&p), wire);
        }
    }

    #[test]
    fn decode_of_encode_round_trips() {
        for (_, p) in vectors() {
            assert_eq!(decode(&encode(&p)).unwrap(), p);
        }
        let nested = Packet::event(
            "/deep",
            vec![
                json!("x"),
                json!({"a": [1, 2.5, null, true, {"b": "é\u{1e}\"\\"}]}),
            ],
            Some(u64::MAX),
            0,
        );
        assert_eq!(decode(&encode(&nested)).unwrap(), nested);
    }

    #[test]
    fn namespace_without_trailing_comma_ends_at_end_of_text() {
        // What the client sends as "40/custom" (the Engine.IO '4' already stripped).
        assert_eq!(
            decode("0/custom").unwrap(),
            packet(PacketKind::Connect, "/custom", None, None, 0)
        );
        assert_eq!(
            decode("1/custom").unwrap(),
            packet(PacketKind::Disconnect, "/custom", None, None, 0)
        );
    }

    #[test]
    fn object_key_order_is_preserved() {
        let p = decode(r#"2["e",{"b":1,"a":2,"c":{"z":0,"y":1}}]"#).unwrap();
        assert_eq!(encode(&p), r#"2["e",{"b":1,"a":2,"c":{"z":0,"y":1}}]"#);
    }

    #[test]
    fn encode_output_is_compact() {
        let p = decode(r#"2[ "e" , { "a" : 1 } ]"#).unwrap();
        assert_eq!(encode(&p), r#"2["e",{"a":1}]"#);
    }

    #[test]
    fn constructors_produce_expected_wire_text() {
        assert_eq!(encode(&Packet::connect_ok("/", "abc")), r#"0{"sid":"abc"}"#);
        assert_eq!(
            encode(&Packet::connect_ok("/admin", "abc")),
            r#"0/admin,{"sid":"abc"}"#
        );
        assert_eq!(
            encode(&Packet::connect_ok_with_pid("/", "abc", "p1")),
            r#"0{"sid":"abc","pid":"p1"}"#
        );
        assert_eq!(
            encode(&Packet::connect_error("/random", "Invalid namespace")),
            r#"4/random,{"message":"Invalid namespace"}"#
        );
        assert_eq!(encode(&Packet::disconnect("/")), "1");
        assert_eq!(encode(&Packet::disconnect("/admin")), "1/admin,");
        assert_eq!(
            encode(&Packet::event(
                "/",
                vec![json!("chat"), json!("hi")],
                None,
                0
            )),
            r#"2["chat","hi"]"#
        );
        assert_eq!(
            encode(&Packet::event(
                "/",
                vec![json!("up"), placeholder(0)],
                Some(3),
                1
            )),
            r#"51-3["up",{"_placeholder":true,"num":0}]"#
        );
        assert_eq!(
            encode(&Packet::ack("/admin", vec![json!("ok")], 7, 0)),
            r#"3/admin,7["ok"]"#
        );
        assert_eq!(
            encode(&Packet::ack("/", vec![placeholder(0)], 7, 1)),
            r#"61-7[{"_placeholder":true,"num":0}]"#
        );
    }

    #[test]
    fn event_picks_binary_kind_only_with_attachments() {
        assert_eq!(Packet::event("/", vec![], None, 0).kind, PacketKind::Event);
        assert_eq!(
            Packet::event("/", vec![], None, 2).kind,
            PacketKind::BinaryEvent
        );
        assert_eq!(Packet::ack("/", vec![], 1, 0).kind, PacketKind::Ack);
        assert_eq!(Packet::ack("/", vec![], 1, 1).kind, PacketKind::BinaryAck);
    }

    #[test]
    fn event_name_and_args_come_from_the_payload() {
        let p = decode(r#"2["chat","hi",3]"#).unwrap();
        assert_eq!(p.event_name(), Some("chat"));
        assert_eq!(p.args(), &[json!("hi"), json!(3)]);
        let ack = decode(r#"31["ok"]"#).unwrap();
        assert_eq!(ack.event_name(), None);
        assert_eq!(ack.args(), &[json!("ok")]);
        assert_eq!(decode("0").unwrap().args(), &[] as &[Value]);
    }

    #[test]
    fn placeholder_has_exact_shape() {
        assert_eq!(
            placeholder(3).to_string(),
            r#"{"_placeholder":true,"num":3}"#
        );
    }

    #[test]
    fn placeholders_are_counted_at_any_depth() {
        let v = json!(["e", placeholder(0), {"x": [placeholder(1), {"y": placeholder(2)}]}, 5]);
        assert_eq!(count_placeholders(&v), 3);
        assert_eq!(
            count_placeholders(&json!(["e", {"_placeholder": false}])),
            0
        );
    }

    #[test]
    fn reserved_event_names_are_recognised() {
        for name in [
            "connect",
            "connect_error",
            "disconnect",
            "disconnecting",
            "newListener",
            "removeListener",
        ] {
            assert!(is_reserved_event(name), "{name}");
        }
        assert!(!is_reserved_event("message"));
        assert!(!is_reserved_event("Connect"));
    }

    #[test]
    fn empty_text_is_rejected() {
        assert_eq!(decode(""), Err(SioError::Empty));
    }

    #[test]
    fn unknown_type_is_rejected() {
        assert_eq!(decode("9"), Err(SioError::UnknownType));
        assert_eq!(decode("7[\"a\"]"), Err(SioError::UnknownType));
        assert_eq!(decode("abc"), Err(SioError::UnknownType));
        assert_eq!(decode("é"), Err(SioError::UnknownType));
    }

    #[test]
    fn malformed_json_is_rejected() {
        assert_eq!(decode(r#"2["a""#), Err(SioError::BadJson));
        assert_eq!(decode(r#"2/admin,1["a""#), Err(SioError::BadJson));
        assert_eq!(decode("0{"), Err(SioError::BadJson));
    }

    #[test]
    fn trailing_text_after_json_is_rejected() {
        assert_eq!(decode(r#"2["a"]x"#), Err(SioError::BadJson));
        assert_eq!(decode(r#"2["a"]["b"]"#), Err(SioError::BadJson));
    }

    #[test]
    fn event_name_must_be_a_string() {
        assert_eq!(decode("2[1]"), Err(SioError::BadPayload));
        assert_eq!(decode("2[null]"), Err(SioError::BadPayload));
        assert_eq!(decode(r#"2[["a"]]"#), Err(SioError::BadPayload));
    }

    #[test]
    fn event_payload_must_be_a_non_empty_array() {
        assert_eq!(decode("2{}"), Err(SioError::BadPayload));
        assert_eq!(decode("2[]"), Err(SioError::BadPayload));
        assert_eq!(decode(r#"2"chat""#), Err(SioError::BadPayload));
        assert_eq!(decode("2"), Err(SioError::BadPayload));
        assert_eq!(decode("2/admin,"), Err(SioError::BadPayload));
        assert_eq!(decode("212"), Err(SioError::BadPayload));
    }

    #[test]
    fn payload_shape_is_checked_per_kind() {
        assert_eq!(decode(r#"0["a"]"#), Err(SioError::BadPayload));
        assert_eq!(decode(r#"0"tok""#), Err(SioError::BadPayload));
        assert_eq!(decode("1{}"), Err(SioError::BadPayload));
        assert_eq!(decode("1/admin,[]"), Err(SioError::BadPayload));
        assert_eq!(decode("4[]"), Err(SioError::BadPayload));
        assert_eq!(decode("4"), Err(SioError::BadPayload));
        assert_eq!(decode("31{}"), Err(SioError::BadPayload));
        assert_eq!(decode("31"), Err(SioError::BadPayload));
        assert_eq!(decode("2null"), Err(SioError::BadPayload));
    }

    #[test]
    fn letters_before_the_payload_are_a_bad_ack_id() {
        assert_eq!(decode(r#"2abc["a"]"#), Err(SioError::BadAckId));
        assert_eq!(decode(r#"212abc["a"]"#), Err(SioError::BadAckId));
        assert_eq!(decode(r#"2/admin,x1["a"]"#), Err(SioError::BadAckId));
    }

    #[test]
    fn ack_id_overflowing_u64_is_rejected() {
        assert_eq!(
            decode(&format!(r#"2{}["a"]"#, u64::MAX)).unwrap().id,
            Some(u64::MAX)
        );
        assert_eq!(
            decode(r#"218446744073709551616["a"]"#),
            Err(SioError::BadAckId)
        );
        assert_eq!(
            decode(r#"399999999999999999999999[]"#),
            Err(SioError::BadAckId)
        );
    }

    #[test]
    fn namespace_with_control_characters_is_rejected() {
        assert_eq!(decode("0/a\u{1e}b,"), Err(SioError::BadNamespace));
        assert_eq!(decode("0/a\nb"), Err(SioError::BadNamespace));
    }

    #[test]
    fn binary_kind_without_attachment_count_is_rejected() {
        assert_eq!(
            decode(r#"5-["a",{"_placeholder":true,"num":0}]"#),
            Err(SioError::BadAttachmentCount)
        );
        assert_eq!(decode("5x-[\"a\"]"), Err(SioError::BadAttachmentCount));
        assert_eq!(decode(r#"5["a"]"#), Err(SioError::BadAttachmentCount));
        assert_eq!(decode("51"), Err(SioError::BadAttachmentCount));
        assert_eq!(decode("5"), Err(SioError::BadAttachmentCount));
        assert_eq!(decode("6-1[]"), Err(SioError::BadAttachmentCount));
    }

    #[test]
    fn binary_kind_with_zero_attachments_is_rejected() {
        assert_eq!(decode(r#"50-["a"]"#), Err(SioError::BadAttachmentCount));
        assert_eq!(decode("60-1[]"), Err(SioError::BadAttachmentCount));
    }

    #[test]
    fn more_than_max_attachments_is_rejected() {
        let ok = format!(r#"5{MAX_ATTACHMENTS}-["a"]"#);
        assert_eq!(decode(&ok).unwrap().attachments, MAX_ATTACHMENTS);
        assert_eq!(decode(r#"565-["a"]"#), Err(SioError::TooManyAttachments));
        assert_eq!(
            decode(r#"599999999999999999999999999-["a"]"#),
            Err(SioError::TooManyAttachments)
        );
    }

    #[test]
    fn placeholder_beyond_attachment_count_is_rejected() {
        assert_eq!(
            decode(r#"51-["a",{"_placeholder":true,"num":1}]"#),
            Err(SioError::BadPlaceholder)
        );
        assert_eq!(
            decode(r#"61-1[{"x":[{"_placeholder":true,"num":5}]}]"#),
            Err(SioError::BadPlaceholder)
        );
    }

    #[test]
    fn placeholder_without_integer_num_is_rejected() {
        assert_eq!(
            decode(r#"51-["a",{"_placeholder":true}]"#),
            Err(SioError::BadPlaceholder)
        );
        assert_eq!(
            decode(r#"51-["a",{"_placeholder":true,"num":-1}]"#),
            Err(SioError::BadPlaceholder)
        );
        assert_eq!(
            decode(r#"51-["a",{"_placeholder":true,"num":0.5}]"#),
            Err(SioError::BadPlaceholder)
        );
        assert_eq!(
            decode(r#"51-["a",{"_placeholder":true,"num":"0"}]"#),
            Err(SioError::BadPlaceholder)
        );
    }

    #[test]
    fn placeholder_like_objects_in_text_packets_are_plain_json() {
        let p = decode(r#"2["a",{"_placeholder":true,"num":9}]"#).unwrap();
        assert_eq!(p.kind, PacketKind::Event);
        assert_eq!(p.attachments, 0);
    }

    #[test]
    fn decoder_returns_text_packets_at_once() {
        let mut d = Decoder::new();
        assert_eq!(
            d.feed_text(r#"2["chat","hi"]"#).unwrap(),
            Decoded::Packet(decode(r#"2["chat","hi"]"#).unwrap(), vec![])
        );
        assert!(!d.is_waiting());
    }

    #[test]
    fn decoder_waits_for_every_attachment_then_yields_them_in_order() {
        let mut d = Decoder::new();
        let text = r#"52-789["message-with-ack",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#;
        assert_eq!(d.feed_text(text).unwrap(), Decoded::NeedMore);
        assert!(d.is_waiting());
        assert_eq!(
            d.feed_binary(Bytes::from_static(&[1])).unwrap(),
            Decoded::NeedMore
        );
        let Decoded::Packet(p, bins) = d.feed_binary(Bytes::from_static(&[2, 3])).unwrap() else {
            panic!("packet not complete after 2 attachments");
        };
        assert_eq!(p, decode(text).unwrap());
        assert_eq!(
            bins,
            vec![Bytes::from_static(&[1]), Bytes::from_static(&[2, 3])]
        );
        assert!(!d.is_waiting());
        // Ready for the next packet.
        assert!(matches!(d.feed_text("0").unwrap(), Decoded::Packet(_, _)));
    }

    #[test]
    fn decoder_rejects_text_while_attachments_are_pending() {
        let mut d = Decoder::new();
        d.feed_text(r#"51-["upload",{"_placeholder":true,"num":0}]"#)
            .unwrap();
        assert_eq!(d.feed_text(r#"2["chat"]"#), Err(SioError::UnexpectedText));
        assert!(!d.is_waiting());
    }

    #[test]
    fn decoder_rejects_binary_when_none_expected() {
        let mut d = Decoder::new();
        assert_eq!(
            d.feed_binary(Bytes::from_static(b"x")),
            Err(SioError::UnexpectedBinary)
        );
        d.feed_text(r#"61-1[{"_placeholder":true,"num":0}]"#)
            .unwrap();
        assert!(matches!(
            d.feed_binary(Bytes::from_static(b"a")).unwrap(),
            Decoded::Packet(_, _)
        ));
        assert_eq!(
            d.feed_binary(Bytes::from_static(b"b")),
            Err(SioError::UnexpectedBinary)
        );
    }

    #[test]
    fn decoder_passes_decode_errors_through() {
        let mut d = Decoder::new();
        assert_eq!(d.feed_text("9"), Err(SioError::UnknownType));
        assert_eq!(
            d.feed_text(r#"565-["a"]"#),
            Err(SioError::TooManyAttachments)
        );
        assert!(!d.is_waiting());
    }

    #[test]
    fn partial_binary_reports_completion_and_ignores_extras() {
        let p = decode(r#"52-["a",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#)
            .unwrap();
        let mut partial = PartialBinary::new(p.clone());
        assert!(!partial.push(Bytes::from_static(b"1")));
        assert!(partial.push(Bytes::from_static(b"2")));
        assert!(partial.push(Bytes::from_static(b"3")));
        let (packet, bins) = partial.into_parts();
        assert_eq!(packet, p);
        assert_eq!(
            bins,
            vec![Bytes::from_static(b"1"), Bytes::from_static(b"2")]
        );
    }

    #[test]
    fn errors_display_a_reason() {
        assert_eq!(
            SioError::UnexpectedText.to_string(),
            "text packet while attachments are pending"
        );
    }
}
