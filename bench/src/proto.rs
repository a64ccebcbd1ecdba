//! The few Engine.IO v4 / Socket.IO v5 packets the load generator reads and writes, as text
//! over WebSocket. Pure functions, no IO: the hot paths call them once per frame.
//!
//! # Format
//! ```text
//! engine.io packet   = type-digit payload         0 open, 1 close, 2 ping, 3 pong, 4 message, 6 noop
//! socket.io (in "4") = type-digit ["/ns,"] [ack-id digits] [json]
//!                      0 connect, 1 disconnect, 2 event, 3 ack, 4 connect error,
//!                      5 binary event, 6 binary ack
//! examples           0{"sid":"…","pingInterval":25000,…}   2   3   40   40{"sid":"…"}
//!                    42["msg",{"t":1}]   4212["echo-ack",{…}]   4312[{…}]
//! ```

use std::fmt::Write as _;

/// One text frame received from the server, classified without parsing its JSON.
#[derive(Debug, PartialEq, Eq)]
pub enum Inbound<'a> {
    /// Engine.IO open; the JSON handshake data.
    Open(&'a str),
    /// Engine.IO close.
    Close,
    /// Engine.IO ping: answer with [`PONG`].
    Ping,
    /// Engine.IO pong or noop.
    Pong,
    /// Socket.IO CONNECT reply; its JSON (`{"sid":…}`).
    Connect(&'a str),
    /// Socket.IO CONNECT_ERROR; its JSON.
    ConnectError(&'a str),
    /// Socket.IO DISCONNECT from the server.
    Disconnect,
    /// Socket.IO EVENT; `body` is the JSON array `["name",…args]`.
    Event { ack: Option<u64>, body: &'a str },
    /// Socket.IO ACK; `body` is the JSON array of the ack's arguments.
    Ack { id: u64, body: &'a str },
    /// Anything else (binary events, unknown types, malformed text).
    Other,
}

/// Engine.IO pong, the answer to a server ping.
pub const PONG: &str = "3";
/// Socket.IO CONNECT to the default namespace.
pub const CONNECT: &str = "40";

/// Classifies a text frame.
pub fn classify(text: &str) -> Inbound<'_> {
    let bytes = text.as_bytes();
    match bytes.first() {
        Some(b'0') => Inbound::Open(&text[1..]),
        Some(b'1') => Inbound::Close,
        Some(b'2') => Inbound::Ping,
        Some(b'3') | Some(b'6') => Inbound::Pong,
        Some(b'4') => classify_socketio(&text[1..]),
        _ => Inbound::Other,
    }
}

fn classify_socketio(text: &str) -> Inbound<'_> {
    let Some(&kind) = text.as_bytes().first() else {
        return Inbound::Other;
    };
    let mut rest = &text[1..];
    // Skip a namespace ("/chat,"); the generator only uses "/" but tolerates others.
    if rest.starts_with('/') {
        match rest.find(',') {
            Some(comma) => rest = &rest[comma + 1..],
            None => rest = "",
        }
    }
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let id = if digits > 0 {
        rest[..digits].parse::<u64>().ok()
    } else {
        None
    };
    let body = &rest[digits..];
    match kind {
        b'0' => Inbound::Connect(body),
        b'1' => Inbound::Disconnect,
        b'2' => Inbound::Event { ack: id, body },
        b'3' => match id {
            Some(id) => Inbound::Ack { id, body },
            None => Inbound::Other,
        },
        b'4' => Inbound::ConnectError(body),
        _ => Inbound::Other,
    }
}

/// Encodes a Socket.IO EVENT on the default namespace: `42[ack]` followed by `args`, which
/// must already be a JSON array whose first element is the event name.
pub fn event(ack: Option<u64>, args: &str) -> String {
    let mut out = String::with_capacity(args.len() + 24);
    out.push_str("42");
    if let Some(id) = ack {
        let _ = write!(out, "{id}");
    }
    out.push_str(args);
    out
}

/// The value of a non-negative integer field `"key":123` in a JSON text, found by search.
/// Only sound when the key cannot appear elsewhere in the text, which holds for the payloads
/// built by [`payload`].
pub fn num_field(json: &str, key: &str) -> Option<u64> {
    // Hot path (once or twice per delivered frame): a plain byte scan, no substring search.
    let bytes = json.as_bytes();
    let key = key.as_bytes();
    let mut from = 0;
    while from < bytes.len() {
        let quote = from + bytes[from..].iter().position(|&c| c == b'"')?;
        let name_end = quote + 1 + key.len();
        let is_key = bytes.get(name_end) == Some(&b'"')
            && bytes[quote + 1..name_end]
                .iter()
                .zip(key)
                .all(|(a, b)| a == b);
        if is_key {
            let mut i = name_end + 1;
            while bytes.get(i) == Some(&b' ') {
                i += 1;
            }
            if bytes.get(i) == Some(&b':') {
                i += 1;
                while bytes.get(i) == Some(&b' ') {
                    i += 1;
                }
                let mut value: u64 = 0;
                let start = i;
                while let Some(d) = bytes.get(i).filter(|c| c.is_ascii_digit()) {
                    value = value.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
                    i += 1;
                }
                return (i > start).then_some(value);
            }
        }
        from = quote + 1;
    }
    None
}

/// A benchmark message object of about `size` bytes:
/// `{"s":STEP,"n":TAG,"t":MICROS,"p":"xxxx…"}`. `s` says which step (or which publisher) sent
/// it, `t` when, in microseconds since the generator started; `p` pads it to `size`.
pub fn payload(step: u64, tag: u64, t_us: u64, size: usize) -> String {
    let mut out = String::with_capacity(size.max(48));
    let _ = write!(out, "{{\"s\":{step},\"n\":{tag},\"t\":{t_us},\"p\":\"");
    let pad = size.saturating_sub(out.len() + 2);
    out.extend(std::iter::repeat_n('x', pad));
    out.push_str("\"}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_engine_io_packets() {
        assert_eq!(
            classify(r#"0{"sid":"a","pingInterval":25000}"#),
            Inbound::Open(r#"{"sid":"a","pingInterval":25000}"#)
        );
        assert_eq!(classify("2"), Inbound::Ping);
        assert_eq!(classify("3"), Inbound::Pong);
        assert_eq!(classify("6"), Inbound::Pong);
        assert_eq!(classify("1"), Inbound::Close);
        assert_eq!(classify(""), Inbound::Other);
        assert_eq!(classify("x"), Inbound::Other);
    }

    #[test]
    fn classifies_socket_io_packets() {
        assert_eq!(
            classify(r#"40{"sid":"b"}"#),
            Inbound::Connect(r#"{"sid":"b"}"#)
        );
        assert_eq!(
            classify(r#"44{"message":"no"}"#),
            Inbound::ConnectError(r#"{"message":"no"}"#)
        );
        assert_eq!(classify("41"), Inbound::Disconnect);
        assert_eq!(
            classify(r#"42["msg",{"t":1}]"#),
            Inbound::Event {
                ack: None,
                body: r#"["msg",{"t":1}]"#
            }
        );
        assert_eq!(
            classify(r#"4217["echo-ack",1]"#),
            Inbound::Event {
                ack: Some(17),
                body: r#"["echo-ack",1]"#
            }
        );
        assert_eq!(
            classify(r#"4317[{"ok":true}]"#),
            Inbound::Ack {
                id: 17,
                body: r#"[{"ok":true}]"#
            }
        );
        assert_eq!(
            classify(r#"43/chat,5[1]"#),
            Inbound::Ack { id: 5, body: "[1]" }
        );
        assert_eq!(classify("43[1]"), Inbound::Other);
        assert_eq!(classify("4"), Inbound::Other);
        assert_eq!(
            classify(r#"451-["x",{"_placeholder":true,"num":0}]"#),
            Inbound::Other
        );
    }

    #[test]
    fn encodes_events_with_and_without_ack() {
        assert_eq!(
            event(None, r#"["join-room","bench"]"#),
            r#"42["join-room","bench"]"#
        );
        assert_eq!(event(Some(9), r#"["echo-ack",1]"#), r#"429["echo-ack",1]"#);
    }

    #[test]
    fn payload_has_the_requested_size_and_fields() {
        let p = payload(3, 1, 123456, 100);
        assert_eq!(p.len(), 100);
        assert!(serde_json::from_str::<serde_json::Value>(&p).is_ok());
        assert_eq!(num_field(&p, "s"), Some(3));
        assert_eq!(num_field(&p, "n"), Some(1));
        assert_eq!(num_field(&p, "t"), Some(123456));
        // Too small a size still gives a valid object.
        assert!(serde_json::from_str::<serde_json::Value>(&payload(1, 0, 2, 1)).is_ok());
    }

    #[test]
    fn finds_fields_whatever_the_key_order_and_spacing() {
        // socketioxide re-serialises objects with sorted keys; others keep the order.
        let body = r#"["msg",{"n":0,"p":"xx","s":2,"t":77}]"#;
        assert_eq!(num_field(body, "t"), Some(77));
        assert_eq!(num_field(body, "s"), Some(2));
        assert_eq!(num_field(r#"{"t" : 5}"#, "t"), Some(5));
        assert_eq!(num_field(r#"{"at":1}"#, "t"), None);
        assert_eq!(num_field(r#"{"t":"x"}"#, "t"), None);
    }
}
