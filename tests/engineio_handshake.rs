//! Engine.IO handshakes, the JSON error bodies, CORS and the health endpoints, against the real
//! server on port 0.

mod common;

use std::time::Duration;

use actix_web::http::{Method, StatusCode};
use bytes::Bytes;
use common::*;
use ferrio::config::{Config, CorsOrigins};
use serde_json::json;

fn is_base64url_id(s: &str) -> bool {
    s.len() == 20
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[actix_rt::test]
async fn polling_handshake_sends_sid_upgrades_and_limits_from_config() {
    let srv = TestServer::start(Config {
        ping_interval: Duration::from_millis(1234),
        ping_timeout: Duration::from_millis(567),
        max_payload: 8910,
        ..config()
    });
    let reply = get(&srv.url("EIO=4&transport=polling")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.header("content-type").as_deref(),
        Some("text/plain; charset=UTF-8")
    );
    let open: serde_json::Value =
        serde_json::from_str(reply.body.strip_prefix('0').expect("open packet")).expect("JSON");
    let sid = open["sid"].as_str().expect("sid");
    assert!(is_base64url_id(sid), "sid {sid:?}");
    assert_eq!(
        open,
        json!({"sid": sid, "upgrades": ["websocket"], "pingInterval": 1234,
               "pingTimeout": 567, "maxPayload": 8910})
    );
    // exactly these keys, in this order
    let keys: Vec<&str> = open
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "sid",
            "upgrades",
            "pingInterval",
            "pingTimeout",
            "maxPayload"
        ]
    );
    assert_eq!(srv.sessions(), 1);
}

#[actix_rt::test]
async fn polling_handshakes_get_distinct_sids() {
    let srv = TestServer::start(config());
    let a = Polling::open(&srv).await;
    let b = Polling::open(&srv).await;
    assert_ne!(a.sid, b.sid);
}

#[actix_rt::test]
async fn websocket_handshake_offers_no_upgrades() {
    let srv = TestServer::start(Config {
        max_payload: 4321,
        ..config()
    });
    let (_ws, open) = Ws::open(&srv).await;
    let sid = open["sid"].as_str().expect("sid");
    assert!(is_base64url_id(sid), "sid {sid:?}");
    assert_eq!(
        open,
        json!({"sid": sid, "upgrades": [], "pingInterval": 25000,
               "pingTimeout": 20000, "maxPayload": 4321})
    );
    srv.wait_sessions(1).await;
}

#[actix_rt::test]
async fn missing_or_unsupported_eio_version_is_refused_with_code_5() {
    let srv = TestServer::start(config());
    for query in [
        "transport=polling",
        "EIO=3&transport=polling",
        "EIO=5&transport=polling",
        "EIO=abc&transport=websocket",
    ] {
        let reply = get(&srv.url(query)).await;
        reply.assert_eio_error(5);
        assert_eq!(
            reply.json(),
            json!({"code": 5, "message": "Unsupported protocol version"}),
            "{query}"
        );
    }
    assert_eq!(srv.sessions(), 0);
}

#[actix_rt::test]
async fn missing_or_unknown_transport_is_refused_with_code_0() {
    let srv = TestServer::start(config());
    for query in ["EIO=4", "EIO=4&transport=flashsocket", "EIO=4&transport="] {
        let reply = get(&srv.url(query)).await;
        assert_eq!(
            reply.json(),
            json!({"code": 0, "message": "Transport unknown"}),
            "{query}"
        );
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    }
}

#[actix_rt::test]
async fn handshake_with_post_is_refused_with_code_2() {
    let srv = TestServer::start(config());
    let reply = request(Method::POST, &srv.url("EIO=4&transport=polling"), &[], "40").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.json(),
        json!({"code": 2, "message": "Bad handshake method"})
    );
    assert_eq!(srv.sessions(), 0);
}

#[actix_rt::test]
async fn unknown_sid_is_refused_with_code_1_for_get_post_and_websocket() {
    let srv = TestServer::start(config());
    let url = srv.url("EIO=4&transport=polling&sid=AAAAAAAAAAAAAAAAAAAA");
    let reply = get(&url).await;
    assert_eq!(
        reply.json(),
        json!({"code": 1, "message": "Session ID unknown"})
    );
    request(Method::POST, &url, &[], "40")
        .await
        .assert_eio_error(1);
    // The WebSocket upgrade request is refused before switching protocols.
    let ws_url = srv.ws_url("EIO=4&transport=websocket&sid=AAAAAAAAAAAAAAAAAAAA");
    let err = http_client()
        .ws(ws_url.as_str())
        .connect()
        .await
        .err()
        .expect("websocket with an unknown sid must be refused");
    match err {
        awc::error::WsClientError::InvalidResponseStatus(status) => {
            assert_eq!(status, StatusCode::BAD_REQUEST)
        }
        other => panic!("expected a 400, got {other:?}"),
    }
    // The same request as plain HTTP shows the body.
    get(&srv.url("EIO=4&transport=websocket&sid=AAAAAAAAAAAAAAAAAAAA"))
        .await
        .assert_eio_error(1);
}

#[actix_rt::test]
async fn engine_path_without_trailing_slash_is_served_too() {
    let srv = TestServer::start(config());
    let url = format!("http://{}/socket.io?EIO=4&transport=polling", srv.addr);
    let reply = get(&url).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body.starts_with("0{\"sid\":"), "{:?}", reply.body);
}

fn cors_config() -> Config {
    Config {
        cors_origins: Some(CorsOrigins::List(vec!["http://a.example".to_owned()])),
        ..config()
    }
}

#[actix_rt::test]
async fn cors_allowed_origin_gets_allow_origin_and_credentials() {
    let srv = TestServer::start(cors_config());
    let reply = request(
        Method::GET,
        &srv.url("EIO=4&transport=polling"),
        &[("Origin", "http://a.example")],
        Bytes::new(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.header("access-control-allow-origin").as_deref(),
        Some("http://a.example")
    );
    assert_eq!(
        reply.header("access-control-allow-credentials").as_deref(),
        Some("true")
    );
    // error answers carry them too, so a browser can read the error body
    let reply = request(
        Method::GET,
        &srv.url("EIO=4&transport=polling&sid=AAAAAAAAAAAAAAAAAAAA"),
        &[("Origin", "http://a.example")],
        Bytes::new(),
    )
    .await;
    reply.assert_eio_error(1);
    assert_eq!(
        reply.header("access-control-allow-origin").as_deref(),
        Some("http://a.example")
    );
}

#[actix_rt::test]
async fn cors_disallowed_origin_gets_no_cors_headers() {
    let srv = TestServer::start(cors_config());
    let reply = request(
        Method::GET,
        &srv.url("EIO=4&transport=polling"),
        &[("Origin", "http://evil.example")],
        Bytes::new(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("access-control-allow-origin"), None);
    assert_eq!(reply.header("access-control-allow-credentials"), None);
}

#[actix_rt::test]
async fn cors_preflight_is_answered_204() {
    let srv = TestServer::start(cors_config());
    let reply = request(
        Method::OPTIONS,
        &srv.url("EIO=4&transport=polling"),
        &[
            ("Origin", "http://a.example"),
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "content-type"),
        ],
        Bytes::new(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(
        reply.header("access-control-allow-origin").as_deref(),
        Some("http://a.example")
    );
    assert_eq!(
        reply.header("access-control-allow-credentials").as_deref(),
        Some("true")
    );
    let methods = reply
        .header("access-control-allow-methods")
        .expect("allow-methods");
    assert!(
        methods.contains("GET") && methods.contains("POST"),
        "{methods}"
    );
    assert_eq!(
        reply.header("access-control-allow-headers").as_deref(),
        Some("content-type")
    );
}

#[actix_rt::test]
async fn cors_unconfigured_sends_no_cors_headers() {
    let srv = TestServer::start(config());
    let reply = request(
        Method::GET,
        &srv.url("EIO=4&transport=polling"),
        &[("Origin", "http://a.example")],
        Bytes::new(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("access-control-allow-origin"), None);
    assert_eq!(reply.header("access-control-allow-credentials"), None);
    let preflight = request(
        Method::OPTIONS,
        &srv.url("EIO=4&transport=polling"),
        &[
            ("Origin", "http://a.example"),
            ("Access-Control-Request-Method", "POST"),
        ],
        Bytes::new(),
    )
    .await;
    assert_ne!(preflight.status, StatusCode::NO_CONTENT);
    assert_eq!(preflight.header("access-control-allow-origin"), None);
}

#[actix_rt::test]
async fn healthz_and_readyz_answer_200_while_serving() {
    let srv = TestServer::start(config());
    let health = get(&srv.http("/healthz")).await;
    assert_eq!(health.status, StatusCode::OK);
    let ready = get(&srv.http("/readyz")).await;
    assert_eq!(ready.status, StatusCode::OK);
}

#[actix_rt::test]
async fn plain_http_get_for_a_websocket_handshake_is_refused_with_code_3_and_leaves_no_session() {
    let srv = TestServer::start(config());
    get(&srv.url("EIO=4&transport=websocket"))
        .await
        .assert_eio_error(3);
    srv.wait_sessions(0).await;
}

#[actix_rt::test]
async fn polling_request_with_another_method_is_refused_with_code_3() {
    let srv = TestServer::start(config());
    let p = Polling::open(&srv).await;
    for method in [Method::PUT, Method::DELETE, Method::PATCH] {
        request(method, &p.url, &[], "40").await.assert_eio_error(3);
    }
}

#[actix_rt::test]
async fn cors_any_echoes_the_origin_with_credentials_or_sends_a_star_without_one() {
    let srv = TestServer::start(Config {
        cors_origins: Some(CorsOrigins::Any),
        ..config()
    });
    let with_origin = request(
        Method::GET,
        &srv.url("EIO=4&transport=polling"),
        &[("Origin", "http://anywhere.example")],
        Bytes::new(),
    )
    .await;
    assert_eq!(
        with_origin.header("access-control-allow-origin").as_deref(),
        Some("http://anywhere.example")
    );
    assert_eq!(
        with_origin
            .header("access-control-allow-credentials")
            .as_deref(),
        Some("true")
    );
    let without = get(&srv.url("EIO=4&transport=polling")).await;
    assert_eq!(
        without.header("access-control-allow-origin").as_deref(),
        Some("*")
    );
    assert_eq!(without.header("access-control-allow-credentials"), None);
}
