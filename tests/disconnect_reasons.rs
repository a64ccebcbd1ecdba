//! The disconnect reason an application sees for each way a connection ends, and what the
//! client sees, against the real server with a handler written in the test.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use ferrio::config::Config;
use ferrio::server::{DisconnectReason, Event, Handler, Socket};
use serde_json::json;

/// Records `(socket id, reason)` of every disconnect, and what pending acks resolved to.
#[derive(Clone, Default)]
struct Recorder {
    reasons: Arc<Mutex<Vec<(String, &'static str)>>>,
    acks: Arc<Mutex<Vec<String>>>,
}

impl Handler for Recorder {
    fn on_event(&self, socket: &Socket, event: Event) {
        match event.name.as_str() {
            "echo" => socket.emit("echo", event.args),
            "kick" => socket.disconnect(),
            "close-me" => socket.close_session(),
            "ask-me" => {
                let fut = socket.emit_with_ack("question", vec![], vec![], Duration::from_secs(5));
                let acks = self.acks.clone();
                actix::spawn(async move {
                    let outcome = match fut.await {
                        Ok(data) => format!("answered {:?}", data.args),
                        Err(e) => e.to_string(),
                    };
                    acks.lock().expect("lock").push(outcome);
                });
            }
            _ => {}
        }
    }

    fn on_disconnect(&self, socket: &Socket, reason: DisconnectReason) {
        self.reasons
            .lock()
            .expect("lock")
            .push((socket.id().to_string(), reason.as_str()));
    }
}

impl Recorder {
    /// The reason recorded for socket `id`, waiting up to [`WAIT`] for it.
    async fn reason(&self, id: &str) -> &'static str {
        let reasons = self.reasons.clone();
        let found = || {
            reasons
                .lock()
                .expect("lock")
                .iter()
                .find(|(i, _)| i == id)
                .map(|(_, r)| *r)
        };
        assert!(
            eventually(WAIT, || found().is_some()).await,
            "no disconnect recorded for {id}"
        );
        found().expect("recorded")
    }
}

fn start(config: Config) -> (TestServer, Recorder) {
    let rec = Recorder::default();
    (TestServer::start_with(config, rec.clone()), rec)
}

#[actix_rt::test]
async fn client_close_packet_is_transport_close() {
    let (srv, rec) = start(config());
    let (mut ws, id) = ws_client(&srv).await;
    ws.send("1").await;
    ws.expect_closed().await;
    assert_eq!(rec.reason(&id).await, "transport close");
}

#[actix_rt::test]
async fn websocket_closed_by_the_client_is_transport_close() {
    let (srv, rec) = start(config());
    let (ws, id) = ws_client(&srv).await;
    ws.close().await;
    assert_eq!(rec.reason(&id).await, "transport close");
    srv.wait_sessions(0).await;
}

#[actix_rt::test]
async fn polling_close_packet_is_transport_close() {
    let (srv, rec) = start(config());
    let (p, id) = polling_client(&srv).await;
    p.post_ok("1").await;
    assert_eq!(rec.reason(&id).await, "transport close");
}

#[actix_rt::test]
async fn client_namespace_disconnect_is_reported_and_keeps_the_session() {
    let (srv, rec) = start(config());
    let (mut ws, id) = ws_client(&srv).await;
    ws.send("41").await;
    assert_eq!(rec.reason(&id).await, "client namespace disconnect");
    assert_eq!(srv.sessions(), 1);
}

#[actix_rt::test]
async fn server_disconnect_sends_a_disconnect_packet_and_keeps_the_session() {
    let (srv, rec) = start(config());
    let (mut ws, id) = ws_client(&srv).await;
    ws.emit(None, json!(["kick"])).await;
    assert_eq!(ws.recv_text().await, "41");
    assert_eq!(rec.reason(&id).await, "server namespace disconnect");
    assert_eq!(srv.sessions(), 1);
    // the client may connect again on the same session
    let again = ws.connect_ns().await;
    assert_ne!(again, id);
}

#[actix_rt::test]
async fn server_close_session_is_forced_close() {
    let (srv, rec) = start(config());
    let (mut ws, id) = ws_client(&srv).await;
    ws.emit(None, json!(["close-me"])).await;
    ws.expect_closed().await;
    assert_eq!(rec.reason(&id).await, "forced close");
    srv.wait_sessions(0).await;
}

#[actix_rt::test]
async fn unanswered_ping_is_ping_timeout() {
    let (srv, rec) = start(fast_ping(100, 100));
    let (mut ws, id) = ws_client(&srv).await;
    ws.expect_closed_within(Duration::from_secs(1)).await;
    assert_eq!(rec.reason(&id).await, "ping timeout");
}

#[actix_rt::test]
async fn malformed_packet_is_parse_error() {
    let (srv, rec) = start(config());
    let (mut ws, id) = ws_client(&srv).await;
    ws.send("42{}").await;
    ws.expect_closed().await;
    assert_eq!(rec.reason(&id).await, "parse error");
}

#[actix_rt::test]
async fn oversize_websocket_message_is_transport_error() {
    let (srv, rec) = start(Config {
        max_payload: 100,
        ..config()
    });
    let (mut ws, id) = ws_client(&srv).await;
    ws.send(&format!(r#"42["echo","{}"]"#, "x".repeat(100)))
        .await;
    ws.expect_closed().await;
    assert_eq!(rec.reason(&id).await, "transport error");
}

#[actix_rt::test]
async fn oversize_polling_post_is_transport_error() {
    let (srv, rec) = start(Config {
        max_payload: 100,
        ..config()
    });
    let (p, id) = polling_client(&srv).await;
    p.post(format!(r#"42["echo","{}"]"#, "x".repeat(100))).await;
    assert_eq!(rec.reason(&id).await, "transport error");
}

#[actix_rt::test]
async fn shutdown_is_server_shutting_down() {
    let (srv, rec) = start(config());
    let (mut ws, id) = ws_client(&srv).await;
    within(Duration::from_secs(8), "shutdown", srv.handle.shutdown()).await;
    ws.expect_closed().await;
    assert_eq!(rec.reason(&id).await, "server shutting down");
}

#[actix_rt::test]
async fn pending_server_ack_fails_with_disconnected_when_the_socket_leaves() {
    let (srv, rec) = start(config());
    let (mut ws, id) = ws_client(&srv).await;
    ws.emit(None, json!(["ask-me"])).await;
    let question = ws.recv_sio().await;
    assert_eq!(question.data, Some(json!(["question"])));
    ws.send("41").await;
    assert_eq!(rec.reason(&id).await, "client namespace disconnect");
    let acks = rec.acks.clone();
    assert!(
        eventually(WAIT, || !acks.lock().expect("lock").is_empty()).await,
        "the pending ack never resolved"
    );
    assert_eq!(*rec.acks.lock().expect("lock"), ["disconnected"]);
}

#[actix_rt::test]
async fn pending_server_ack_fails_with_disconnected_when_the_session_closes() {
    let (srv, rec) = start(config());
    let (mut ws, _) = ws_client(&srv).await;
    ws.emit(None, json!(["ask-me"])).await;
    ws.recv_sio().await;
    ws.close().await;
    let acks = rec.acks.clone();
    assert!(
        eventually(WAIT, || !acks.lock().expect("lock").is_empty()).await,
        "the pending ack never resolved"
    );
    assert_eq!(*rec.acks.lock().expect("lock"), ["disconnected"]);
    srv.wait_sessions(0).await;
}
