//! A raw Engine.IO application (`Server::engine`) on its own path, beside Socket.IO, with a
//! handler written in the test against the public API.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use ferrio::server::{
    DisconnectReason, EngineHandler, EngineSocket, Event, Frame, Handler, Server, Socket,
};

/// Echoes every message and records opens and closes.
#[derive(Clone, Default)]
struct Echo {
    log: Arc<Mutex<Vec<String>>>,
}

impl EngineHandler for Echo {
    fn on_open(&self, socket: &EngineSocket) {
        self.log
            .lock()
            .expect("lock")
            .push(format!("open {}", socket.sid()));
    }

    fn on_message(&self, socket: &EngineSocket, message: Frame) {
        socket.send(message);
    }

    fn on_close(&self, socket: &EngineSocket, reason: DisconnectReason) {
        self.log
            .lock()
            .expect("lock")
            .push(format!("close {} {}", socket.sid(), reason.as_str()));
    }
}

struct Nothing;

impl Handler for Nothing {
    fn on_event(&self, _: &Socket, _: Event) {}
}

fn start() -> (TestServer, Echo) {
    let echo = Echo::default();
    let server = Server::new(config(), Nothing).engine("/engine.io/", echo.clone());
    (TestServer::start_server(server, "/engine.io/"), echo)
}

#[actix_rt::test]
async fn raw_engine_path_echoes_text_and_binary_over_polling() {
    let (srv, echo) = start();
    let p = Polling::open(&srv).await;
    p.post_ok("4hello\x1ebAQID\x1e4").await;
    assert_eq!(p.poll().await, ["4hello", "bAQID", "4"]);
    assert_eq!(*echo.log.lock().expect("lock"), [format!("open {}", p.sid)]);
    // Socket.IO framing means nothing here: "40" is just the text "0"
    p.post_ok("40").await;
    assert_eq!(p.poll_one().await, "40");
}

#[actix_rt::test]
async fn raw_engine_path_echoes_over_websocket_and_reports_the_close() {
    let (srv, echo) = start();
    let mut ws = Ws::connect(&format!(
        "ws://{}/engine.io/?EIO=4&transport=websocket",
        srv.addr
    ))
    .await;
    let open = ws.recv_text().await;
    assert!(open.starts_with(r#"0{"sid":""#), "{open}");
    ws.send("4héllo").await;
    assert_eq!(ws.recv_text().await, "4héllo");
    ws.send_binary(Bytes::from_static(&[0, 255])).await;
    assert_eq!(ws.recv_binary().await, Bytes::from_static(&[0, 255]));
    ws.send("1").await;
    ws.expect_closed().await;
    let log = echo.log.clone();
    assert!(
        eventually(WAIT, || log.lock().expect("lock").len() == 2).await,
        "{:?}",
        echo.log.lock().expect("lock")
    );
    assert!(echo.log.lock().expect("lock")[1].ends_with(" transport close"));
}

#[actix_rt::test]
async fn a_raw_engine_sid_is_unknown_on_the_socketio_path_and_back() {
    let (srv, _) = start();
    let raw = Polling::open(&srv).await;
    let sio = get(&format!(
        "http://{}/socket.io/?EIO=4&transport=polling",
        srv.addr
    ))
    .await;
    let sio_sid = sio.body[1..].to_owned();
    let sio_sid: serde_json::Value = serde_json::from_str(&sio_sid).expect("handshake");
    let sio_sid = sio_sid["sid"].as_str().expect("sid");
    // each path is its own Engine.IO server, as two engine.io servers in Node are
    get(&format!(
        "http://{}/socket.io/?EIO=4&transport=polling&sid={}",
        srv.addr, raw.sid
    ))
    .await
    .assert_eio_error(1);
    get(&format!(
        "http://{}/engine.io/?EIO=4&transport=polling&sid={sio_sid}",
        srv.addr
    ))
    .await
    .assert_eio_error(1);
    request(
        actix_web::http::Method::POST,
        &format!(
            "http://{}/socket.io/?EIO=4&transport=polling&sid={}",
            srv.addr, raw.sid
        ),
        &[],
        "40",
    )
    .await
    .assert_eio_error(1);
    get(&format!(
        "http://{}/socket.io/?EIO=4&transport=websocket&sid={}",
        srv.addr, raw.sid
    ))
    .await
    .assert_eio_error(1);
    raw.post_ok("4ping").await;
    assert_eq!(raw.poll_one().await, "4ping");
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(srv.sessions(), 2);
}
