//! Engine.IO v4 packet codec: the transport layer's packets, the HTTP long-polling payload
//! framing, the open handshake, session ids and the JSON error bodies.
//!
//! This module owns the bytes between a transport (a WebSocket frame or a polling request
//! body) and a typed [`EioPacket`]. It does no IO: the socket actor hands it text or bytes and
//! gets packets back, or the other way round.
//!
//! # Format
//!
//! A text packet is one ASCII type digit followed by its data:
//!
//! ```text
//! 0{"sid":"…",…}   open (server → client, handshake JSON)
//! 1                close
//! 2probe           ping (data optional; "probe" during an upgrade)
//! 3probe           pong
//! 4hello           message (text)
//! 5                upgrade
//! 6                noop
//! ```
//!
//! A binary message has no type digit: over WebSocket it is a whole binary frame; inside a
//! polling payload it is written `b` followed by the standard base64 of the bytes. A polling
//! payload joins its records with the record separator `0x1E`:
//!
//! ```text
//! 4hello<0x1E>bAQIDBA==      = [Message("hello"), Binary([1, 2, 3, 4])]
//! ```

use std::fmt;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use bytes::Bytes;

/// Separates the records of an HTTP long-polling payload.
pub const RECORD_SEPARATOR: char = '\x1e';

/// Length, in characters, of a session id made by [`generate_id`]. Node's sids have this
/// length too, and the sharded Redis adapter recognises a socket id by it.
pub const SID_LEN: usize = 20;

/// Base64 for polling binary records: standard alphabet, padded on output; on input padding
/// is optional, since being strict about it protects nothing.
const POLLING_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// One Engine.IO packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EioPacket {
    /// `0` + handshake JSON; only the server sends it (see [`Handshake`]).
    Open(String),
    /// `1`: the session ends.
    Close,
    /// `2` + optional data. The server pings in v4; the client sends `2probe` on a new
    /// WebSocket to test it during an upgrade.
    Ping(String),
    /// `3` + optional data; `3probe` answers the upgrade probe.
    Pong(String),
    /// `4` + text: a text message, which carries one Socket.IO packet.
    Message(String),
    /// A binary message: a WebSocket binary frame, or `b` + base64 in a polling payload.
    Binary(Bytes),
    /// `5`: the client switches to the WebSocket it probed.
    Upgrade,
    /// `6`: does nothing; releases a pending poll during an upgrade.
    Noop,
}

/// Why some text or bytes are not Engine.IO packets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EioError {
    /// The frame, body or one of the body's records is empty.
    Empty,
    /// The first character is not a packet type this side accepts.
    UnknownType(char),
    /// A polling `b` record is not valid base64.
    BadBase64,
    /// A polling body is not UTF-8.
    NotUtf8,
}

impl fmt::Display for EioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EioError::Empty => f.write_str("empty packet"),
            EioError::UnknownType(c) => write!(f, "unknown packet type {c:?}"),
            EioError::BadBase64 => f.write_str("invalid base64 in binary record"),
            EioError::NotUtf8 => f.write_str("payload is not UTF-8"),
        }
    }
}

impl std::error::Error for EioError {}

/// Decodes one WebSocket text frame, or one record of a polling payload that is not binary.
///
/// # Format
///
/// `<type digit><data>`, see the module documentation. Data after `1`, `5` and `6` is
/// ignored, as the reference parser does. `b` is an unknown type here: base64 binary exists
/// only inside polling payloads ([`decode_payload`]).
pub fn decode_text(frame: &str) -> Result<EioPacket, EioError> {
    let mut chars = frame.chars();
    let kind = chars.next().ok_or(EioError::Empty)?;
    let data = chars.as_str();
    Ok(match kind {
        '0' => EioPacket::Open(data.to_owned()),
        '1' => EioPacket::Close,
        '2' => EioPacket::Ping(data.to_owned()),
        '3' => EioPacket::Pong(data.to_owned()),
        '4' => EioPacket::Message(data.to_owned()),
        '5' => EioPacket::Upgrade,
        '6' => EioPacket::Noop,
        other => return Err(EioError::UnknownType(other)),
    })
}

/// Decodes the body of a polling POST into its packets, in order.
///
/// # Format
///
/// UTF-8 text; records separated by `0x1E`; a record is either `b` + base64 (a binary
/// message) or a text packet as in [`decode_text`]. An empty body or an empty record (two
/// separators in a row, or one at either end) is an error.
pub fn decode_payload(body: &[u8]) -> Result<Vec<EioPacket>, EioError> {
    if body.is_empty() {
        return Err(EioError::Empty);
    }
    let text = std::str::from_utf8(body).map_err(|_| EioError::NotUtf8)?;
    text.split(RECORD_SEPARATOR).map(decode_record).collect()
}

/// Decodes one polling record: `b` + base64, or a text packet.
fn decode_record(record: &str) -> Result<EioPacket, EioError> {
    match record.strip_prefix('b') {
        Some(b64) => POLLING_BASE64
            .decode(b64)
            .map(|bytes| EioPacket::Binary(Bytes::from(bytes)))
            .map_err(|_| EioError::BadBase64),
        None => decode_text(record),
    }
}

/// Encodes one packet as text: what a WebSocket text frame or a polling record carries.
///
/// # Format
///
/// `<type digit><data>`; [`EioPacket::Binary`] becomes `b` + padded standard base64 (its
/// polling form; over WebSocket send the bytes as a binary frame instead).
pub fn encode_text(p: &EioPacket) -> String {
    let (kind, data) = match p {
        EioPacket::Open(json) => ('0', json.as_str()),
        EioPacket::Close => ('1', ""),
        EioPacket::Ping(data) => ('2', data.as_str()),
        EioPacket::Pong(data) => ('3', data.as_str()),
        EioPacket::Message(text) => ('4', text.as_str()),
        EioPacket::Upgrade => ('5', ""),
        EioPacket::Noop => ('6', ""),
        EioPacket::Binary(bytes) => {
            let mut out = String::with_capacity(1 + bytes.len().div_ceil(3) * 4);
            out.push('b');
            POLLING_BASE64.encode_string(bytes, &mut out);
            return out;
        }
    };
    let mut out = String::with_capacity(1 + data.len());
    out.push(kind);
    out.push_str(data);
    out
}

/// Encodes packets as the body of a polling GET response.
///
/// # Format
///
/// Each packet as in [`encode_text`], joined by `0x1E`. A text message that itself contains
/// `0x1E` cannot be framed this way; Socket.IO text never does (JSON escapes control
/// characters and the Socket.IO decoder refuses them in namespaces).
pub fn encode_payload(packets: &[EioPacket]) -> String {
    let mut out = String::new();
    for (i, p) in packets.iter().enumerate() {
        if i > 0 {
            out.push(RECORD_SEPARATOR);
        }
        out.push_str(&encode_text(p));
    }
    out
}

/// Wraps an already encoded Socket.IO packet in an Engine.IO message: `4` + `sio_text`.
///
/// The fast path for broadcasts: the Socket.IO packet is encoded once and framed here,
/// without building an [`EioPacket`].
pub fn message_frame(sio_text: &str) -> String {
    let mut out = String::with_capacity(1 + sio_text.len());
    out.push('4');
    out.push_str(sio_text);
    out
}

/// The data of the open packet, which starts every session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    /// The session id the client quotes in every later request (`sid=`).
    pub sid: String,
    /// Transports the client may upgrade to: `["websocket"]` on polling, `[]` on WebSocket.
    pub upgrades: Vec<String>,
    /// Milliseconds between the server's pings.
    pub ping_interval: u64,
    /// Milliseconds the client has to answer a ping.
    pub ping_timeout: u64,
    /// Largest polling POST body, in bytes, the server accepts.
    pub max_payload: u64,
}

impl Handshake {
    /// The open packet as text.
    ///
    /// # Format
    ///
    /// `0{"sid":"…","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}`,
    /// keys in exactly this order, compact.
    pub fn to_packet_text(&self) -> String {
        let upgrades: Vec<String> = self.upgrades.iter().map(|u| json_string(u)).collect();
        format!(
            "0{{\"sid\":{},\"upgrades\":[{}],\"pingInterval\":{},\"pingTimeout\":{},\"maxPayload\":{}}}",
            json_string(&self.sid),
            upgrades.join(","),
            self.ping_interval,
            self.ping_timeout,
            self.max_payload,
        )
    }
}

/// `s` as a quoted, escaped JSON string.
fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// A new random session (or socket) id: 20 characters of base64url, from 15 bytes of the
/// thread-local CSPRNG.
///
/// Ids are bearer tokens (whoever knows a sid can poll that session), so they come from a
/// cryptographically secure generator; 120 random bits also make them unique across a
/// cluster without coordination.
pub fn generate_id() -> String {
    use rand::RngCore as _;
    let mut raw = [0u8; 15];
    rand::thread_rng().fill_bytes(&mut raw);
    URL_SAFE_NO_PAD.encode(raw)
}

/// The error codes of Engine.IO's HTTP 400 answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// `transport` missing or neither `polling` nor `websocket`.
    TransportUnknown = 0,
    /// `sid` names no session on this node.
    UnknownSid = 1,
    /// A handshake with a method other than GET.
    BadHandshakeMethod = 2,
    /// Any other malformed request.
    BadRequest = 3,
    /// Refused by an `allowRequest`-style hook.
    Forbidden = 4,
    /// `EIO` missing or not 4.
    UnsupportedProtocolVersion = 5,
}

impl ErrorCode {
    /// The numeric code on the wire.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The message Node's engine.io sends with this code.
    pub fn message(self) -> &'static str {
        match self {
            ErrorCode::TransportUnknown => "Transport unknown",
            ErrorCode::UnknownSid => "Session ID unknown",
            ErrorCode::BadHandshakeMethod => "Bad handshake method",
            ErrorCode::BadRequest => "Bad request",
            ErrorCode::Forbidden => "Forbidden",
            ErrorCode::UnsupportedProtocolVersion => "Unsupported protocol version",
        }
    }

    /// The HTTP 400 body.
    ///
    /// # Format
    ///
    /// `{"code":1,"message":"Session ID unknown"}`
    pub fn to_json(self) -> String {
        format!(
            "{{\"code\":{},\"message\":{}}}",
            self.code(),
            json_string(self.message())
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::collections::HashSet;

    fn all_text_packets() -> Vec<(&'static str, EioPacket)> {
        vec![
            (
                "0{\"sid\":\"x\"}",
                EioPacket::Open("{\"sid\":\"x\"}".into()),
            ),
            ("1", EioPacket::Close),
            ("2", EioPacket::Ping(String::new())),
            ("2probe", EioPacket::Ping("probe".into())),
            ("3", EioPacket::Pong(String::new())),
            ("3probe", EioPacket::Pong("probe".into())),
            ("4hello", EioPacket::Message("hello".into())),
            ("4", EioPacket::Message(String::new())),
            ("4héllo €", EioPacket::Message("héllo €".into())),
            ("5", EioPacket::Upgrade),
            ("6", EioPacket::Noop),
        ]
    }

    #[test]
    fn every_text_type_decodes_from_its_wire_form() {
        for (wire, packet) in all_text_packets() {
            assert_eq!(decode_text(wire).unwrap(), packet, "decoding {wire:?}");
        }
    }

    #[test]
    fn every_text_type_encodes_to_its_wire_form() {
        for (wire, packet) in all_text_packets() {
            assert_eq!(encode_text(&packet), wire);
        }
    }

    #[test]
    fn binary_encodes_as_b_plus_padded_base64() {
        let p = EioPacket::Binary(Bytes::from_static(&[1, 2, 3, 4]));
        assert_eq!(encode_text(&p), "bAQIDBA==");
        assert_eq!(encode_text(&EioPacket::Binary(Bytes::new())), "b");
    }

    #[test]
    fn close_upgrade_noop_ignore_trailing_data() {
        assert_eq!(decode_text("1x").unwrap(), EioPacket::Close);
        assert_eq!(decode_text("5x").unwrap(), EioPacket::Upgrade);
        assert_eq!(decode_text("6x").unwrap(), EioPacket::Noop);
    }

    #[test]
    fn empty_frame_is_rejected() {
        assert_eq!(decode_text(""), Err(EioError::Empty));
    }

    #[test]
    fn unknown_type_is_rejected() {
        assert_eq!(decode_text("7"), Err(EioError::UnknownType('7')));
        assert_eq!(decode_text("abc"), Err(EioError::UnknownType('a')));
        assert_eq!(decode_text("é"), Err(EioError::UnknownType('é')));
    }

    #[test]
    fn websocket_text_frame_starting_with_b_is_not_binary() {
        assert_eq!(decode_text("bAQIDBA=="), Err(EioError::UnknownType('b')));
    }

    #[test]
    fn polling_payload_splits_text_and_base64_records() {
        let packets = decode_payload(b"4hello\x1ebAQIDBA==").unwrap();
        assert_eq!(
            packets,
            vec![
                EioPacket::Message("hello".into()),
                EioPacket::Binary(Bytes::from_static(&[1, 2, 3, 4])),
            ]
        );
    }

    #[test]
    fn polling_payload_encodes_records_joined_by_record_separator() {
        let body = encode_payload(&[
            EioPacket::Message("hello".into()),
            EioPacket::Binary(Bytes::from_static(&[1, 2, 3, 4])),
        ]);
        assert_eq!(body, "4hello\x1ebAQIDBA==");
    }

    #[test]
    fn polling_payload_of_one_packet_has_no_separator() {
        assert_eq!(encode_payload(&[EioPacket::Noop]), "6");
        assert_eq!(
            decode_payload(b"2").unwrap(),
            vec![EioPacket::Ping(String::new())]
        );
    }

    #[test]
    fn polling_payload_round_trips_every_type() {
        let mut packets: Vec<EioPacket> = all_text_packets().into_iter().map(|(_, p)| p).collect();
        packets.push(EioPacket::Binary(Bytes::from_static(b"\x00\xff\x1e")));
        packets.push(EioPacket::Binary(Bytes::new()));
        let body = encode_payload(&packets);
        assert_eq!(decode_payload(body.as_bytes()).unwrap(), packets);
    }

    #[test]
    fn polling_binary_record_accepts_missing_padding() {
        assert_eq!(
            decode_payload(b"bAQIDBA").unwrap(),
            vec![EioPacket::Binary(Bytes::from_static(&[1, 2, 3, 4]))]
        );
    }

    #[test]
    fn polling_payload_with_bad_base64_is_rejected() {
        assert_eq!(decode_payload(b"b!!!!"), Err(EioError::BadBase64));
        assert_eq!(decode_payload(b"4ok\x1ebA"), Err(EioError::BadBase64));
        assert_eq!(decode_payload(b"bAQ-D"), Err(EioError::BadBase64));
    }

    #[test]
    fn polling_empty_body_is_rejected() {
        assert_eq!(decode_payload(b""), Err(EioError::Empty));
    }

    #[test]
    fn polling_empty_record_is_rejected() {
        assert_eq!(decode_payload(b"4a\x1e\x1e4b"), Err(EioError::Empty));
        assert_eq!(decode_payload(b"4a\x1e"), Err(EioError::Empty));
        assert_eq!(decode_payload(b"\x1e4a"), Err(EioError::Empty));
    }

    #[test]
    fn polling_body_that_is_not_utf8_is_rejected() {
        assert_eq!(decode_payload(b"4\xff\xfe"), Err(EioError::NotUtf8));
    }

    #[test]
    fn polling_record_with_unknown_type_is_rejected() {
        assert_eq!(decode_payload(b"4ok\x1e9"), Err(EioError::UnknownType('9')));
    }

    #[test]
    fn message_frame_prefixes_message_type() {
        assert_eq!(message_frame("2[\"chat\",\"hi\"]"), "42[\"chat\",\"hi\"]");
        assert_eq!(message_frame(""), "4");
    }

    #[test]
    fn handshake_text_has_exact_keys_in_order() {
        let h = Handshake {
            sid: "lv_VI97HAXpY6yYWAAAC".into(),
            upgrades: vec!["websocket".into()],
            ping_interval: 25000,
            ping_timeout: 20000,
            max_payload: 1_000_000,
        };
        assert_eq!(
            h.to_packet_text(),
            r#"0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#
        );
    }

    #[test]
    fn handshake_on_websocket_offers_no_upgrades() {
        let h = Handshake {
            sid: "s".into(),
            upgrades: vec![],
            ping_interval: 300,
            ping_timeout: 200,
            max_payload: 1_000_000,
        };
        assert_eq!(
            h.to_packet_text(),
            r#"0{"sid":"s","upgrades":[],"pingInterval":300,"pingTimeout":200,"maxPayload":1000000}"#
        );
    }

    #[test]
    fn handshake_text_is_an_open_packet_with_valid_json() {
        let h = Handshake {
            sid: generate_id(),
            upgrades: vec!["websocket".into()],
            ping_interval: 1,
            ping_timeout: 2,
            max_payload: 3,
        };
        let EioPacket::Open(json) = decode_text(&h.to_packet_text()).unwrap() else {
            panic!("not an open packet");
        };
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["sid"], h.sid.as_str());
    }

    #[test]
    fn error_bodies_are_exact_json() {
        let expected = [
            (
                ErrorCode::TransportUnknown,
                r#"{"code":0,"message":"Transport unknown"}"#,
            ),
            (
                ErrorCode::UnknownSid,
                r#"{"code":1,"message":"Session ID unknown"}"#,
            ),
            (
                ErrorCode::BadHandshakeMethod,
                r#"{"code":2,"message":"Bad handshake method"}"#,
            ),
            (
                ErrorCode::BadRequest,
                r#"{"code":3,"message":"Bad request"}"#,
            ),
            (ErrorCode::Forbidden, r#"{"code":4,"message":"Forbidden"}"#),
            (
                ErrorCode::UnsupportedProtocolVersion,
                r#"{"code":5,"message":"Unsupported protocol version"}"#,
            ),
        ];
        for (code, json) in expected {
            assert_eq!(code.to_json(), json);
        }
    }

    #[test]
    fn generated_ids_are_20_base64url_chars() {
        for _ in 0..1000 {
            let id = generate_id();
            assert_eq!(id.len(), SID_LEN);
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "bad charset in {id:?}"
            );
        }
    }

    #[test]
    fn generated_ids_are_unique_over_10k() {
        let ids: HashSet<String> = (0..10_000).map(|_| generate_id()).collect();
        assert_eq!(ids.len(), 10_000);
    }

    #[test]
    fn errors_display_a_reason() {
        assert_eq!(
            EioError::UnknownType('9').to_string(),
            "unknown packet type '9'"
        );
        assert_eq!(EioError::Empty.to_string(), "empty packet");
    }
}
