//! Socket.IO over the real server: CONNECT and namespaces, handlers written against the public
//! API, server-to-client acks, and malformed input that must close only the sender's session.

mod common;

use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use bytes::Bytes;
use common::*;
use ferrio::config::{Config, NamespacePattern};
use ferrio::server::{ConnectRefusal, Event, Handler, HandshakeData, Socket};
use serde_json::{json, Value};

fn is_base64url_id(s: &str) -> bool {
    s.len() == 20
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[actix_rt::test]
async fn connect_gets_a_20_char_socket_id_different_from_the_engine_sid() {
    let srv = TestServer::start(config());
    let p = Polling::open(&srv).await;
    p.post_ok("40").await;
    let reply = p.poll_one().await;
    let packet = parse(&reply);
    assert_eq!((packet.kind, packet.ns.as_str()), (0, "/"), "{reply}");
    let data = packet.data.expect("payload");
    let keys: Vec<&String> = data.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["sid"], "{reply}");
    let id = data["sid"].as_str().expect("sid");
    assert!(is_base64url_id(id), "{id:?}");
    assert_ne!(id, p.sid);
    assert!(reply.starts_with(r#"40{"sid":""#), "{reply}");

    // a second session's socket gets another id
    let (_, other) = polling_client(&srv).await;
    assert_ne!(other, id);
}

#[actix_rt::test]
async fn connect_to_a_namespace_not_in_config_gets_invalid_namespace() {
    let srv = TestServer::start(config());
    let (mut ws, _) = Ws::open(&srv).await;
    ws.send("40/admin,").await;
    assert_eq!(
        ws.recv_text().await,
        r#"44/admin,{"message":"Invalid namespace"}"#
    );
    // the session stays, and `/` can still be joined
    let id = ws.connect_ns().await;
    assert!(is_base64url_id(&id));
}

#[actix_rt::test]
async fn connect_to_a_namespace_matching_a_prefix_pattern_is_accepted() {
    let srv = TestServer::start(Config {
        namespaces: vec![
            NamespacePattern::Exact("/".to_owned()),
            NamespacePattern::Prefix("/org-".to_owned()),
        ],
        ..config()
    });
    let p = Polling::open(&srv).await;
    p.post_ok("40/org-42,\x1e40/org-7,\x1e40/org,\x1e40/other,")
        .await;
    let records = p.poll().await;
    assert_eq!(records.len(), 4, "{records:?}");
    let a = parse(&records[0]);
    let b = parse(&records[1]);
    assert_eq!((a.kind, a.ns.as_str()), (0, "/org-42"));
    assert_eq!((b.kind, b.ns.as_str()), (0, "/org-7"));
    let (a_id, b_id) = (
        a.data.expect("payload")["sid"].clone(),
        b.data.expect("payload")["sid"].clone(),
    );
    assert_ne!(a_id, b_id, "each namespace connection has its own id");
    assert_eq!(records[2], r#"44/org,{"message":"Invalid namespace"}"#);
    assert_eq!(records[3], r#"44/other,{"message":"Invalid namespace"}"#);

    // events travel in their namespace
    p.post_ok("42/org-42,[\"echo\",1]\x1e42/org-7,1[\"echo-ack\",2]")
        .await;
    assert_eq!(
        p.poll().await,
        [r#"42/org-42,["echo",1]"#, r#"43/org-7,1[2]"#]
    );
}

#[actix_rt::test]
async fn events_for_a_namespace_not_connected_are_ignored() {
    let srv = TestServer::start(config());
    let (mut ws, _) = ws_client(&srv).await;
    ws.send(r#"42/admin,["echo","nobody"]"#).await;
    ws.send(r#"42["echo","somebody"]"#).await;
    assert_eq!(ws.recv_text().await, r#"42["echo","somebody"]"#);
}

#[actix_rt::test]
async fn client_namespace_disconnect_leaves_the_session_open() {
    let srv = TestServer::start(config());
    let (mut ws, _) = ws_client(&srv).await;
    ws.send("41").await;
    ws.send(r#"42["echo","after disconnect"]"#).await;
    ws.expect_silence(Duration::from_millis(100)).await;
    assert_eq!(srv.sessions(), 1);
    ws.connect_ns().await;
    ws.send(r#"42["echo","back"]"#).await;
    assert_eq!(ws.recv_text().await, r#"42["echo","back"]"#);
}

/// A handler written in the test: refuses the token "bad", greets with the auth payload, and
/// answers `whoami` with the socket's id and namespace.
struct Greeter;

impl Handler for Greeter {
    fn authorize(
        &self,
        _ns: &str,
        auth: &Value,
        _handshake: &HandshakeData,
    ) -> Result<(), ConnectRefusal> {
        if auth["token"] == json!("bad") {
            return Err(ConnectRefusal {
                message: "not authorized".to_owned(),
                data: Some(json!({"retry": false})),
            });
        }
        Ok(())
    }

    fn on_connect(&self, socket: &Socket) {
        socket.emit("welcome", vec![socket.auth().clone()]);
    }

    fn on_event(&self, socket: &Socket, event: Event) {
        if event.name == "whoami" {
            if let Some(ack) = event.ack {
                ack.send(vec![json!({"id": socket.id().as_str(), "ns": socket.ns(),
                                     "sid": socket.sid().as_str()})]);
            }
        }
    }
}

#[actix_rt::test]
async fn connect_auth_reaches_the_handler_and_a_refusal_is_a_connect_error() {
    let srv = TestServer::start_with(config(), Greeter);
    let (mut ws, open) = Ws::open(&srv).await;
    ws.send(r#"40{"token":"bad"}"#).await;
    assert_eq!(
        ws.recv_text().await,
        r#"44{"message":"not authorized","data":{"retry":false}}"#
    );
    ws.send(r#"40{"token":"good"}"#).await;
    let reply = ws.recv_sio().await;
    assert_eq!(reply.kind, 0);
    let id = reply.data.expect("payload")["sid"].clone();
    assert_eq!(ws.recv_text().await, r#"42["welcome",{"token":"good"}]"#);
    assert_eq!(
        ws.call(5, json!(["whoami"])).await,
        json!([{"id": id, "ns": "/", "sid": open["sid"]}])
    );
}

// -- server-to-client acks -------------------------------------------------------------------

#[actix_rt::test]
async fn server_emit_with_ack_resolves_with_the_client_answer() {
    let srv = TestServer::start(config());
    let (mut ws, _) = ws_client(&srv).await;
    ws.emit(
        Some(1),
        json!(["server-ack", {"event": "ask", "args": [1, "two"], "timeout_ms": 2000}]),
    )
    .await;
    let ask = ws.recv_sio().await;
    assert_eq!(ask.kind, 2);
    assert_eq!(ask.data, Some(json!(["ask", 1, "two"])));
    let ack_id = ask.id.expect("the server asks for an ack");
    ws.send(&format!(r#"43{ack_id}["answer",{{"x":1}}]"#)).await;
    assert_eq!(
        ws.recv_text().await,
        r#"431[{"ok":true,"args":["answer",{"x":1}]}]"#
    );
}

#[actix_rt::test]
async fn server_emit_with_ack_over_polling_resolves_with_the_client_answer() {
    let srv = TestServer::start(config());
    let (p, _) = polling_client(&srv).await;
    p.post_ok(r#"427["server-ack",{"event":"ask","args":[],"timeout_ms":2000}]"#)
        .await;
    let ask = parse(&p.poll_one().await);
    assert_eq!(ask.data, Some(json!(["ask"])));
    let ack_id = ask.id.expect("ack id");
    p.post_ok(format!(r#"43{ack_id}["yes"]"#)).await;
    assert_eq!(p.poll_one().await, r#"437[{"ok":true,"args":["yes"]}]"#);
}

#[actix_rt::test]
async fn server_emit_with_ack_times_out_when_the_client_never_answers() {
    let srv = TestServer::start(config());
    let (mut ws, _) = ws_client(&srv).await;
    let asked = Instant::now();
    ws.emit(
        Some(2),
        json!(["server-ack", {"event": "ask", "args": [], "timeout_ms": 150}]),
    )
    .await;
    let ask = ws.recv_sio().await;
    let ack_id = ask.id.expect("ack id");
    assert_eq!(
        ws.recv_text().await,
        r#"432[{"ok":false,"error":"timeout"}]"#
    );
    let waited = asked.elapsed();
    assert!(
        waited >= Duration::from_millis(140) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
    // a late answer is ignored and does not end the session
    ws.send(&format!(r#"43{ack_id}["late"]"#)).await;
    ws.send(r#"42["echo","alive"]"#).await;
    assert_eq!(ws.recv_text().await, r#"42["echo","alive"]"#);
}

#[actix_rt::test]
async fn server_acks_are_matched_by_id_when_several_are_pending() {
    let srv = TestServer::start(config());
    let (mut ws, _) = ws_client(&srv).await;
    ws.emit(
        Some(1),
        json!(["server-ack", {"event": "first", "args": [], "timeout_ms": 2000}]),
    )
    .await;
    ws.emit(
        Some(2),
        json!(["server-ack", {"event": "second", "args": [], "timeout_ms": 2000}]),
    )
    .await;
    let first = ws.recv_sio().await;
    let second = ws.recv_sio().await;
    assert_eq!(first.data, Some(json!(["first"])));
    assert_eq!(second.data, Some(json!(["second"])));
    assert_ne!(first.id, second.id);
    // answer in reverse order
    ws.send(&format!(r#"43{}["B"]"#, second.id.expect("id")))
        .await;
    assert_eq!(ws.recv_text().await, r#"432[{"ok":true,"args":["B"]}]"#);
    ws.send(&format!(r#"43{}["A"]"#, first.id.expect("id")))
        .await;
    assert_eq!(ws.recv_text().await, r#"431[{"ok":true,"args":["A"]}]"#);
}

// -- malformed input -------------------------------------------------------------------------

/// What a misbehaving client sends over its WebSocket.
enum Bad<'a> {
    Text(&'a str),
    Binary(&'a [u8]),
}

/// Connects a bystander on each transport and a misbehaving WebSocket client, sends `frames`,
/// and checks that only the misbehaving session ends while the bystanders keep working.
async fn assert_closes_only_the_sender(frames: &[Bad<'_>]) {
    let srv = TestServer::start(config());
    let (mut ws_bystander, _) = ws_client(&srv).await;
    let (poll_bystander, _) = polling_client(&srv).await;
    let (mut bad, _) = ws_client(&srv).await;
    srv.wait_sessions(3).await;
    for f in frames {
        match f {
            Bad::Text(t) => bad.send(t).await,
            Bad::Binary(b) => bad.send_binary(Bytes::copy_from_slice(b)).await,
        }
    }
    let seen = bad.expect_closed().await;
    assert!(
        seen.iter()
            .all(|e| !matches!(e, WsEvent::Text(t) if t.starts_with("42"))),
        "the bad packet must not reach the handler: {seen:?}"
    );
    srv.wait_sessions(2).await;
    ws_bystander.send(r#"42["echo","fine"]"#).await;
    assert_eq!(ws_bystander.recv_text().await, r#"42["echo","fine"]"#);
    poll_bystander.post_ok(r#"42["echo","fine"]"#).await;
    assert_eq!(poll_bystander.poll_one().await, r#"42["echo","fine"]"#);
}

#[actix_rt::test]
async fn unknown_engineio_packet_type_closes_only_that_session() {
    assert_closes_only_the_sender(&[Bad::Text("9")]).await;
}

#[actix_rt::test]
async fn unknown_socketio_packet_type_closes_only_that_session() {
    assert_closes_only_the_sender(&[Bad::Text(r#"49["echo"]"#)]).await;
}

#[actix_rt::test]
async fn event_payload_that_is_not_an_array_closes_only_that_session() {
    assert_closes_only_the_sender(&[Bad::Text("42{}")]).await;
}

#[actix_rt::test]
async fn event_with_letters_for_an_ack_id_closes_only_that_session() {
    assert_closes_only_the_sender(&[Bad::Text(r#"42abc["echo","x"]"#)]).await;
}

#[actix_rt::test]
async fn event_name_that_is_not_a_string_closes_only_that_session() {
    assert_closes_only_the_sender(&[Bad::Text("42[1,2]")]).await;
}

#[actix_rt::test]
async fn event_with_invalid_json_closes_only_that_session() {
    assert_closes_only_the_sender(&[Bad::Text(r#"42["echo","#)]).await;
}

#[actix_rt::test]
async fn binary_placeholder_beyond_the_attachment_count_closes_only_that_session() {
    assert_closes_only_the_sender(&[
        Bad::Text(r#"451-["echo",{"_placeholder":true,"num":1}]"#),
        Bad::Binary(&[1, 2, 3]),
    ])
    .await;
}

#[actix_rt::test]
async fn binary_message_beyond_the_announced_attachments_closes_only_that_session() {
    assert_closes_only_the_sender(&[
        Bad::Text(r#"451-["noop",{"_placeholder":true,"num":0}]"#),
        Bad::Binary(&[1]),
        Bad::Binary(&[2]),
    ])
    .await;
}

#[actix_rt::test]
async fn text_in_the_middle_of_a_binary_packet_closes_only_that_session() {
    assert_closes_only_the_sender(&[
        Bad::Text(r#"452-["echo",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#),
        Bad::Binary(&[1]),
        Bad::Text(r#"42["echo","interloper"]"#),
    ])
    .await;
}

#[actix_rt::test]
async fn connect_payload_that_is_not_an_object_closes_only_that_session() {
    assert_closes_only_the_sender(&[Bad::Text(r#"40/x,"str""#), Bad::Text(r#"40"str""#)]).await;
}

#[actix_rt::test]
async fn malformed_polling_body_gets_400_and_closes_only_that_session() {
    let srv = TestServer::start(config());
    let (bystander, _) = polling_client(&srv).await;
    // An unparsable Engine.IO payload is refused at once (400); a bad Socket.IO packet inside
    // a good payload is taken by HTTP (200) and then ends the session.
    for (body, status) in [
        ("9", StatusCode::BAD_REQUEST),
        ("bnot base64!", StatusCode::BAD_REQUEST),
        ("42[\"echo\",1]\x1e\x1e", StatusCode::BAD_REQUEST),
        ("42{}", StatusCode::OK),
        ("42abc[\"echo\"]", StatusCode::OK),
        ("49[\"echo\"]", StatusCode::OK),
    ] {
        let (p, _) = polling_client(&srv).await;
        let reply = p.post(body).await;
        assert_eq!(reply.status, status, "{body:?}: {:?}", reply.body);
        srv.wait_sessions(1).await;
        p.get().await.assert_eio_error(1);
    }
    bystander.post_ok(r#"42["echo","fine"]"#).await;
    assert_eq!(bystander.poll_one().await, r#"42["echo","fine"]"#);
}

#[actix_rt::test]
async fn more_than_64_attachments_closes_only_that_session() {
    assert_closes_only_the_sender(&[Bad::Text(r#"4565-["echo"]"#)]).await;
}

#[actix_rt::test]
async fn attachments_over_the_payload_limit_together_close_the_session() {
    let srv = TestServer::start(Config {
        max_payload: 1000,
        ..config()
    });
    let (mut ws, _) = ws_client(&srv).await;
    // each attachment fits, both together do not
    ws.send(r#"452-["echo",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#)
        .await;
    ws.send_binary(vec![0u8; 600]).await;
    ws.send_binary(vec![0u8; 600]).await;
    let seen = ws.expect_closed().await;
    assert!(seen.is_empty(), "{seen:?}");
    srv.wait_sessions(0).await;
}

#[actix_rt::test]
async fn connect_to_more_than_32_namespaces_on_one_connection_is_refused() {
    let srv = TestServer::start(Config {
        namespaces: vec![NamespacePattern::Prefix("/".to_owned())],
        ..config()
    });
    let (mut ws, _) = Ws::open(&srv).await;
    for i in 0..32 {
        ws.send(&format!("40/n{i},")).await;
        let reply = ws.recv_sio().await;
        assert_eq!((reply.kind, reply.ns), (0, format!("/n{i}")));
    }
    ws.send("40/n32,").await;
    let refused = ws.recv_sio().await;
    assert_eq!((refused.kind, refused.ns.as_str()), (4, "/n32"));
    // leaving one makes room for another
    ws.send("41/n0,").await;
    ws.send("40/n32,").await;
    assert_eq!(ws.recv_sio().await.kind, 0);
}

#[actix_rt::test]
async fn server_emit_with_ack_accepts_a_binary_ack() {
    let srv = TestServer::start(config());
    let (mut ws, _) = ws_client(&srv).await;
    ws.emit(
        Some(1),
        json!(["server-ack", {"event": "ask", "args": [], "timeout_ms": 2000}]),
    )
    .await;
    let ack_id = ws.recv_sio().await.id.expect("ack id");
    ws.send(&format!(
        r#"461-{ack_id}["file",{{"_placeholder":true,"num":0}}]"#
    ))
    .await;
    ws.send_binary(Bytes::from_static(&[9, 9, 9])).await;
    assert_eq!(
        ws.recv_text().await,
        r#"431[{"ok":true,"args":["file",{"_placeholder":true,"num":0}],"bins":[3]}]"#
    );
}
