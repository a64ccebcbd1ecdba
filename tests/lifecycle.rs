//! Server and session lifecycle against the real server: readiness and shutdown, the connect
//! timeout, and the slow-consumer policy.

mod common;

use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use common::*;
use ferrio::config::Config;
use serde_json::json;

#[actix_rt::test]
async fn readyz_turns_503_and_sessions_close_when_shutdown_begins() {
    let srv = TestServer::start(config());
    let (mut ws, _) = ws_client(&srv).await;
    let (p, _) = polling_client(&srv).await;
    let url = p.url.clone();
    let parked = actix_rt::spawn(async move { get(&url).await });
    // A session the client closed over polling lingers until its last GET (or a second); it
    // keeps the drain going long enough to ask /readyz during it.
    let lingering = Polling::open(&srv).await;
    lingering.post_ok("1").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(get(&srv.http("/readyz")).await.status, StatusCode::OK);

    let handle = srv.handle.clone();
    let shutdown = actix_rt::spawn(async move { handle.shutdown().await });
    let ready = get(&srv.http("/readyz")).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    // still alive, but no new sessions while draining
    assert_eq!(get(&srv.http("/healthz")).await.status, StatusCode::OK);
    get(&srv.url("EIO=4&transport=polling"))
        .await
        .assert_eio_error(4);

    ws.expect_closed().await;
    let released = within(WAIT, "parked GET", parked).await.expect("task");
    assert_eq!(
        (released.status, released.body.as_str()),
        (StatusCode::OK, "1")
    );
    within(Duration::from_secs(8), "shutdown", shutdown)
        .await
        .expect("task");
    assert_eq!(srv.sessions(), 0);
}

#[actix_rt::test]
async fn shutdown_tells_the_handler_server_shutting_down() {
    use ferrio::server::{DisconnectReason, Event, Handler, Socket};
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Record(Arc<Mutex<Vec<&'static str>>>);
    impl Handler for Record {
        fn on_event(&self, _: &Socket, _: Event) {}
        fn on_disconnect(&self, _: &Socket, reason: DisconnectReason) {
            self.0.lock().expect("lock").push(reason.as_str());
        }
    }

    let record = Record::default();
    let srv = TestServer::start_with(config(), record.clone());
    let (mut ws, _) = ws_client(&srv).await;
    within(Duration::from_secs(8), "shutdown", srv.handle.shutdown()).await;
    ws.expect_closed().await;
    assert_eq!(*record.0.lock().expect("lock"), ["server shutting down"]);
}

#[actix_rt::test]
async fn shutdown_stops_the_listener_and_run_returns() {
    let mut srv = TestServer::start(config());
    let (mut ws, _) = ws_client(&srv).await;
    let (p, _) = polling_client(&srv).await;
    let started = Instant::now();
    within(Duration::from_secs(8), "shutdown", srv.handle.shutdown()).await;
    ws.expect_closed().await;
    let run = srv.run.take().expect("run task");
    within(Duration::from_secs(8), "run() to return", run)
        .await
        .expect("task")
        .expect("run() result");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "shutdown took {:?}",
        started.elapsed()
    );
    // nothing listens any more
    let refused = http_client().get(p.url.as_str()).send().await;
    assert!(refused.is_err(), "the listener still answers");
}

#[actix_rt::test]
async fn session_without_connect_is_closed_after_the_connect_timeout() {
    let srv = TestServer::start(Config {
        connect_timeout: Duration::from_millis(200),
        ..config()
    });
    let opened = Instant::now();
    let (mut ws, _) = Ws::open(&srv).await;
    let p = Polling::open(&srv).await;
    let (mut connected, _) = ws_client(&srv).await;
    ws.expect_closed().await;
    assert!(opened.elapsed() >= Duration::from_millis(190));
    srv.wait_sessions(1).await;
    p.get().await.assert_eio_error(1);
    connected.send(r#"42["echo","stays"]"#).await;
    assert_eq!(connected.recv_text().await, r#"42["echo","stays"]"#);
}

#[actix_rt::test]
async fn connect_timeout_does_not_close_a_session_that_connected_once() {
    // As in Node, the timer is for the first CONNECT: a client that connected in time and then
    // left every namespace keeps its Engine.IO session.
    let srv = TestServer::start(Config {
        connect_timeout: Duration::from_millis(150),
        ..config()
    });
    let (mut ws, _) = ws_client(&srv).await;
    ws.send("41").await;
    ws.expect_silence(Duration::from_millis(300)).await;
    assert_eq!(srv.sessions(), 1);
    ws.connect_ns().await;
}

/// A polling client in room `slow` that stops polling, and a WebSocket client that asks the
/// server to broadcast `count` packets to that room.
async fn flood_a_client_that_never_polls(volatile: bool) -> (TestServer, Polling, Ws) {
    let srv = TestServer::start(Config {
        socket_buffer: 16,
        ..config()
    });
    let (slow, _) = polling_client(&srv).await;
    slow.post_ok(r#"421["join-room","slow"]"#).await;
    assert_eq!(
        slow.poll_one().await,
        r#"431[{"ok":true,"room":"slow","size":1}]"#
    );
    let (mut trigger, _) = ws_client(&srv).await;
    assert_eq!(
        trigger
            .call(
                1,
                json!(["flood", {"room": "slow", "count": 200, "volatile": volatile}])
            )
            .await,
        json!([{"ok": true}])
    );
    (srv, slow, trigger)
}

#[actix_rt::test]
async fn slow_polling_consumer_is_closed_when_its_buffer_overflows() {
    let (srv, slow, mut trigger) = flood_a_client_that_never_polls(false).await;
    srv.wait_sessions(1).await;
    slow.get().await.assert_eio_error(1);
    trigger.send(r#"42["echo","unaffected"]"#).await;
    assert_eq!(trigger.recv_text().await, r#"42["echo","unaffected"]"#);
}

#[actix_rt::test]
async fn slow_polling_consumer_drops_volatile_broadcasts_and_stays_connected() {
    let (srv, slow, _trigger) = flood_a_client_that_never_polls(true).await;
    let records = slow.poll().await;
    assert!(
        !records.is_empty() && records.len() <= 16,
        "{} records",
        records.len()
    );
    let numbers: Vec<u64> = records
        .iter()
        .map(|r| {
            let data = parse(r).data.expect("payload");
            assert_eq!(data[0], json!("flood"), "{r}");
            data[1].as_u64().expect("number")
        })
        .collect();
    assert!(
        numbers.windows(2).all(|w| w[0] < w[1]),
        "kept in order: {numbers:?}"
    );
    assert_eq!(srv.sessions(), 2);
    slow.post_ok(r#"42["echo","still here"]"#).await;
    assert_eq!(slow.poll_one().await, r#"42["echo","still here"]"#);
}
