//! HTTP long-polling against the real server: messages both ways, binary as `b`+base64, the
//! heartbeat, concurrent GETs and the payload limit.

mod common;

use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use common::*;
use ferrio::config::Config;
use serde_json::json;

#[actix_rt::test]
async fn polling_message_round_trips_through_an_echo_handler() {
    let srv = TestServer::start(config());
    let (p, _) = polling_client(&srv).await;
    p.post_ok(r#"42["echo","hi",{"b":1,"a":[2,null]}]"#).await;
    assert_eq!(
        p.poll_one().await,
        r#"42["echo","hi",{"b":1,"a":[2,null]}]"#
    );
}

#[actix_rt::test]
async fn polling_post_with_several_records_is_answered_in_one_get() {
    let srv = TestServer::start(config());
    let (p, _) = polling_client(&srv).await;
    p.post_ok("42[\"echo\",1]\x1e421[\"echo-ack\",\"x\"]\x1e42[\"echo\",2]")
        .await;
    assert_eq!(
        p.poll().await,
        [r#"42["echo",1]"#, r#"431["x"]"#, r#"42["echo",2]"#]
    );
}

#[actix_rt::test]
async fn polling_parked_get_is_answered_when_a_packet_arrives() {
    let srv = TestServer::start(config());
    let (p, _) = polling_client(&srv).await;
    let url = p.url.clone();
    let parked = actix_rt::spawn(async move { get(&url).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!parked.is_finished(), "GET must wait for packets");
    p.post_ok(r#"42["echo","late"]"#).await;
    let reply = within(WAIT, "parked GET", parked).await.expect("task");
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, r#"42["echo","late"]"#);
}

#[actix_rt::test]
async fn polling_binary_travels_as_b_base64_both_ways() {
    let srv = TestServer::start(config());
    let (p, _) = polling_client(&srv).await;
    // [1, 2, 3, 255] is AQID/w==
    p.post_ok("451-[\"echo\",\"bin\",{\"_placeholder\":true,\"num\":0}]\x1ebAQID/w==")
        .await;
    assert_eq!(
        p.poll().await,
        [
            r#"451-["echo","bin",{"_placeholder":true,"num":0}]"#,
            "bAQID/w=="
        ]
    );
    // two attachments, and a binary ack
    p.post_ok(concat!(
        "452-3[\"echo-ack\",{\"_placeholder\":true,\"num\":1},{\"_placeholder\":true,\"num\":0}]",
        "\x1ebAA==\x1ebAQI="
    ))
    .await;
    assert_eq!(
        p.poll().await,
        [
            r#"462-3[{"_placeholder":true,"num":1},{"_placeholder":true,"num":0}]"#,
            "bAA==",
            "bAQI="
        ]
    );
}

#[actix_rt::test]
async fn polling_heartbeat_answered_with_pong_keeps_the_session() {
    let srv = TestServer::start(fast_ping(100, 100));
    let p = Polling::open(&srv).await;
    let started = Instant::now();
    for _ in 0..4 {
        assert_eq!(p.poll_one().await, "2");
        p.post_ok("3").await;
    }
    // four intervals have passed, and more than interval + timeout
    assert!(started.elapsed() >= Duration::from_millis(350));
    assert_eq!(p.poll_one().await, "2");
    assert_eq!(srv.sessions(), 1);
}

#[actix_rt::test]
async fn polling_heartbeat_unanswered_closes_the_session_after_interval_plus_timeout() {
    let srv = TestServer::start(fast_ping(100, 100));
    let p = Polling::open(&srv).await;
    let started = Instant::now();
    assert_eq!(p.poll_one().await, "2");
    // no pong: the parked GET is released with a close packet when the timeout fires
    assert_eq!(p.poll_one().await, "1");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(180) && elapsed < Duration::from_millis(1000),
        "closed after {elapsed:?}"
    );
    p.get().await.assert_eio_error(1);
    assert_eq!(srv.sessions(), 0);
}

#[actix_rt::test]
async fn polling_heartbeat_unanswered_without_a_parked_get_forgets_the_sid() {
    let srv = TestServer::start(fast_ping(100, 100));
    let p = Polling::open(&srv).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    srv.wait_sessions(0).await;
    p.get().await.assert_eio_error(1);
    p.post("3").await.assert_eio_error(1);
}

#[actix_rt::test]
async fn polling_rejects_second_concurrent_get_and_closes_the_session() {
    let srv = TestServer::start(config());
    let (p, _) = polling_client(&srv).await;
    let url = p.url.clone();
    let first = actix_rt::spawn(async move { get(&url).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = p.get().await;
    assert_eq!(second.status, StatusCode::BAD_REQUEST, "{:?}", second.body);
    assert_eq!(second.json()["code"], json!(3));
    let first = within(WAIT, "first GET", first).await.expect("task");
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.body, "1");
    p.get().await.assert_eio_error(1);
    assert_eq!(srv.sessions(), 0);
}

#[actix_rt::test]
async fn polling_post_at_the_payload_limit_is_accepted() {
    let srv = TestServer::start(Config {
        max_payload: 1000,
        ..config()
    });
    let (p, _) = polling_client(&srv).await;
    let overhead = r#"42["echo",""]"#.len();
    let body = format!(r#"42["echo","{}"]"#, "x".repeat(1000 - overhead));
    assert_eq!(body.len(), 1000);
    p.post_ok(body.clone()).await;
    assert_eq!(p.poll_one().await, body);
}

#[actix_rt::test]
async fn polling_post_over_the_payload_limit_gets_413_and_closes_the_session() {
    let srv = TestServer::start(Config {
        max_payload: 1000,
        ..config()
    });
    let (p, _) = polling_client(&srv).await;
    let (other, _) = polling_client(&srv).await;
    let overhead = r#"42["echo",""]"#.len();
    let body = format!(r#"42["echo","{}"]"#, "x".repeat(1001 - overhead));
    assert_eq!(body.len(), 1001);
    let reply = p.post(body).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    srv.wait_sessions(1).await;
    p.get().await.assert_eio_error(1);
    // nothing of it reached the handler, and the other session is unaffected
    other.post_ok(r#"42["echo","still here"]"#).await;
    assert_eq!(other.poll_one().await, r#"42["echo","still here"]"#);
}

#[actix_rt::test]
async fn polling_close_packet_ends_the_session() {
    let srv = TestServer::start(config());
    let (p, _) = polling_client(&srv).await;
    let url = p.url.clone();
    let parked = actix_rt::spawn(async move { get(&url).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    p.post_ok("1").await;
    let reply = within(WAIT, "parked GET", parked).await.expect("task");
    assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, "6"));
    srv.wait_sessions(0).await;
    p.get().await.assert_eio_error(1);
}
