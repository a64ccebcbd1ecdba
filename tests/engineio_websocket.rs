//! WebSocket sessions against the real server: messages, binary frames, the heartbeat, the
//! upgrade from long-polling and the message size limit.

mod common;

use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use awc::ws::CloseCode;
use bytes::Bytes;
use common::*;
use ferrio::config::Config;
use serde_json::json;

#[actix_rt::test]
async fn websocket_message_and_binary_frames_round_trip() {
    let srv = TestServer::start(config());
    let (mut ws, _) = ws_client(&srv).await;
    ws.send(r#"42["echo","hi",{"z":1,"a":2}]"#).await;
    assert_eq!(ws.recv_text().await, r#"42["echo","hi",{"z":1,"a":2}]"#);
    ws.send(r#"451-["echo",{"_placeholder":true,"num":0}]"#)
        .await;
    ws.send_binary(Bytes::from_static(&[1, 2, 3, 0xff])).await;
    assert_eq!(
        ws.recv_text().await,
        r#"451-["echo",{"_placeholder":true,"num":0}]"#
    );
    assert_eq!(ws.recv_binary().await, Bytes::from_static(&[1, 2, 3, 0xff]));
}

#[actix_rt::test]
async fn websocket_heartbeat_answered_keeps_the_session_and_unanswered_closes_it() {
    let srv = TestServer::start(fast_ping(100, 100));
    let (mut ws, open) = Ws::open(&srv).await;
    let sid = open["sid"].as_str().expect("sid").to_owned();
    for _ in 0..3 {
        assert_eq!(ws.recv_text().await, "2");
        ws.send("3").await;
    }
    assert_eq!(ws.recv_text().await, "2");
    let pinged = Instant::now();
    // no pong this time: the server closes the WebSocket after the ping timeout
    let seen = ws.expect_closed_within(Duration::from_secs(1)).await;
    assert!(seen.is_empty(), "unexpected before the close: {seen:?}");
    let waited = pinged.elapsed();
    assert!(
        waited >= Duration::from_millis(80),
        "closed after {waited:?}"
    );
    srv.wait_sessions(0).await;
    get(&srv.url(&format!("EIO=4&transport=polling&sid={sid}")))
        .await
        .assert_eio_error(1);
}

#[actix_rt::test]
async fn websocket_client_close_packet_ends_the_session() {
    let srv = TestServer::start(config());
    let (mut ws, _) = ws_client(&srv).await;
    ws.send("1").await;
    ws.expect_closed().await;
    srv.wait_sessions(0).await;
}

#[actix_rt::test]
async fn upgrade_from_polling_probes_releases_the_poll_and_moves_packets_to_the_websocket() {
    let srv = TestServer::start(config());
    let (p, id) = polling_client(&srv).await;
    let url = p.url.clone();
    let parked = actix_rt::spawn(async move { get(&url).await });
    tokio::time::sleep(Duration::from_millis(50)).await;

    let ws_url = srv.ws_url(&format!("EIO=4&transport=websocket&sid={}", p.sid));
    let mut ws = Ws::connect(&ws_url).await;
    ws.send("2probe").await;
    assert_eq!(ws.recv_text().await, "3probe");
    let released = within(WAIT, "parked GET", parked).await.expect("task");
    assert_eq!(
        (released.status, released.body.as_str()),
        (StatusCode::OK, "6")
    );

    // Between the probe and the upgrade, polling still carries the client's packets, but what
    // the server answers waits for the WebSocket; a poll gets a noop.
    p.post_ok(r#"42["echo","buffered"]"#).await;
    assert_eq!(p.poll_one().await, "6");

    ws.send("5").await;
    assert_eq!(ws.recv_text().await, r#"42["echo","buffered"]"#);
    ws.send(r#"421["echo-ack","over ws"]"#).await;
    assert_eq!(ws.recv_text().await, r#"431["over ws"]"#);

    // Polling with this sid is over.
    let reply = p.get().await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["code"], json!(3));
    let reply = p.post(r#"42["echo","late"]"#).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);

    // The socket is the same one: the hub sees it under its id.
    let members = {
        ws.send(r#"422["join-room","r"]"#).await;
        assert_eq!(
            parse(&ws.recv_text().await).data,
            Some(json!([{"ok": true, "room": "r", "size": 1}]))
        );
        ws.call(3, json!(["room-members", "r"])).await
    };
    assert_eq!(members, json!([{"ok": true, "room": "r", "members": [id]}]));
    assert_eq!(srv.sessions(), 1);
}

#[actix_rt::test]
async fn second_websocket_for_an_upgraded_sid_is_closed() {
    let srv = TestServer::start(config());
    let (p, _) = polling_client(&srv).await;
    let ws_url = srv.ws_url(&format!("EIO=4&transport=websocket&sid={}", p.sid));
    let mut ws = Ws::connect(&ws_url).await;
    ws.send("2probe").await;
    assert_eq!(ws.recv_text().await, "3probe");
    ws.send("5").await;

    let mut second = Ws::connect(&ws_url).await;
    let seen = second.expect_closed().await;
    assert!(seen.is_empty(), "the second WebSocket got {seen:?}");

    ws.send(r#"42["echo","first still works"]"#).await;
    assert_eq!(ws.recv_text().await, r#"42["echo","first still works"]"#);
    assert_eq!(srv.sessions(), 1);
}

#[actix_rt::test]
async fn second_websocket_during_an_upgrade_is_closed() {
    let srv = TestServer::start(config());
    let (p, _) = polling_client(&srv).await;
    let ws_url = srv.ws_url(&format!("EIO=4&transport=websocket&sid={}", p.sid));
    let mut ws = Ws::connect(&ws_url).await;
    ws.send("2probe").await;
    assert_eq!(ws.recv_text().await, "3probe");
    let mut second = Ws::connect(&ws_url).await;
    second.expect_closed().await;
    ws.send("5").await;
    ws.send(r#"42["echo","ok"]"#).await;
    assert_eq!(ws.recv_text().await, r#"42["echo","ok"]"#);
}

#[actix_rt::test]
async fn websocket_for_a_session_opened_on_websocket_is_closed() {
    let srv = TestServer::start(config());
    let (mut ws, open) = Ws::open(&srv).await;
    let sid = open["sid"].as_str().expect("sid");
    let mut second =
        Ws::connect(&srv.ws_url(&format!("EIO=4&transport=websocket&sid={sid}"))).await;
    second.expect_closed().await;
    ws.connect_ns().await;
}

#[actix_rt::test]
async fn websocket_message_at_the_payload_limit_is_accepted() {
    let srv = TestServer::start(Config {
        max_payload: 1000,
        ..config()
    });
    let (mut ws, _) = ws_client(&srv).await;
    let overhead = r#"42["echo",""]"#.len();
    let text = format!(r#"42["echo","{}"]"#, "x".repeat(1000 - overhead));
    ws.send(&text).await;
    assert_eq!(ws.recv_text().await, text);
}

#[actix_rt::test]
async fn websocket_message_over_the_payload_limit_closes_only_that_connection_and_reaches_nobody() {
    let srv = TestServer::start(Config {
        max_payload: 1000,
        ..config()
    });
    let (mut sender, _) = ws_client(&srv).await;
    let (mut member, _) = ws_client(&srv).await;
    let (poller, _) = polling_client(&srv).await;
    assert_eq!(
        member.call(1, json!(["join-room", "r"])).await,
        json!([{"ok": true, "room": "r", "size": 1}])
    );
    let overhead = r#"42["to-room","r","big",""]"#.len();
    let text = format!(
        r#"42["to-room","r","big","{}"]"#,
        "x".repeat(1001 - overhead)
    );
    assert_eq!(text.len(), 1001);
    sender.send(&text).await;
    match sender.recv().await {
        WsEvent::Closed(Some(reason)) => assert_eq!(reason.code, CloseCode::Size),
        WsEvent::Closed(None) => {}
        other => panic!("expected a close, got {other:?}"),
    }
    srv.wait_sessions(2).await;
    member.expect_silence(Duration::from_millis(200)).await;
    member.send(r#"42["echo","unaffected"]"#).await;
    assert_eq!(member.recv_text().await, r#"42["echo","unaffected"]"#);
    poller.post_ok(r#"42["echo","unaffected"]"#).await;
    assert_eq!(poller.poll_one().await, r#"42["echo","unaffected"]"#);
}

#[actix_rt::test]
async fn upgrade_abandoned_after_the_probe_falls_back_to_polling() {
    let srv = TestServer::start(config());
    let (p, _) = polling_client(&srv).await;
    let ws_url = srv.ws_url(&format!("EIO=4&transport=websocket&sid={}", p.sid));
    let mut ws = Ws::connect(&ws_url).await;
    ws.send("2probe").await;
    assert_eq!(ws.recv_text().await, "3probe");
    p.post_ok(r#"42["echo","held"]"#).await;
    ws.close().await;
    // the packet held for the WebSocket goes to the next poll instead (a poll that races the
    // close may still get the upgrade's noop)
    let mut next = p.poll_one().await;
    for _ in 0..10 {
        if next != "6" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        next = p.poll_one().await;
    }
    assert_eq!(next, r#"42["echo","held"]"#);
    p.post_ok(r#"42["echo","polling again"]"#).await;
    assert_eq!(p.poll_one().await, r#"42["echo","polling again"]"#);
    assert_eq!(srv.sessions(), 1);
}

#[actix_rt::test]
async fn heartbeat_goes_on_over_the_websocket_after_an_upgrade() {
    let srv = TestServer::start(fast_ping(150, 150));
    let (p, _) = polling_client(&srv).await;
    let ws_url = srv.ws_url(&format!("EIO=4&transport=websocket&sid={}", p.sid));
    let mut ws = Ws::connect(&ws_url).await;
    ws.send("2probe").await;
    assert_eq!(ws.recv_text().await, "3probe");
    ws.send("5").await;
    for _ in 0..3 {
        assert_eq!(ws.recv_text().await, "2");
        ws.send("3").await;
    }
    assert_eq!(srv.sessions(), 1);
    // and an unanswered one still ends it
    assert_eq!(ws.recv_text().await, "2");
    ws.expect_closed_within(Duration::from_secs(1)).await;
    srv.wait_sessions(0).await;
}

#[actix_rt::test]
async fn polling_request_for_a_session_on_websocket_is_refused() {
    let srv = TestServer::start(config());
    let (mut ws, open) = Ws::open(&srv).await;
    let url = srv.url(&format!(
        "EIO=4&transport=polling&sid={}",
        open["sid"].as_str().expect("sid")
    ));
    get(&url).await.assert_eio_error(3);
    request(actix_web::http::Method::POST, &url, &[], "40")
        .await
        .assert_eio_error(3);
    // the WebSocket session is untouched
    ws.connect_ns().await;
}
