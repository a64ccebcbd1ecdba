//! Tier 4, a slow reader: a WebSocket client that stops reading while the server keeps
//! broadcasting to it. The server must not buffer without bound: once the kernel buffers, the
//! transport queue and FERRIO_SOCKET_BUFFER are full, the session is closed (and counted as a
//! transport error), and everybody else keeps being served.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use ferrio::config::Config;
use serde_json::json;

/// A masked client text frame (RFC 6455), for a hand-made client.
fn client_text_frame(text: &str) -> Vec<u8> {
    let payload = text.as_bytes();
    let mask = [0x12u8, 0x34, 0x56, 0x78];
    let mut f = vec![0x81u8];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// Opens a WebSocket session by hand, connects to `/`, joins `room`, then never reads again.
fn stalled_client(port: u16, room: &str) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let req = format!(
        "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(req.as_bytes()).expect("handshake");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    // Read the 101 response and the open packet; everything after this stays unread.
    while !String::from_utf8_lossy(&seen).contains("\"maxPayload\"") {
        let n = s.read(&mut buf).expect("read");
        assert!(n > 0, "closed during handshake");
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&seen).starts_with("HTTP/1.1 101"));
    s.write_all(&client_text_frame("40")).expect("connect");
    s.write_all(&client_text_frame(&format!(r#"42["join-room","{room}"]"#)))
        .expect("join");
    s
}

#[actix_rt::test]
async fn websocket_client_that_stops_reading_is_closed_and_others_are_served() {
    let srv = TestServer::start(Config {
        socket_buffer: 16,
        ..config()
    });
    let port: u16 = srv
        .http("/")
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .expect("port");
    let (done, wait) = std::sync::mpsc::channel::<()>();
    let stalled = std::thread::spawn(move || {
        let s = stalled_client(port, "slow");
        let _ = wait.recv_timeout(Duration::from_secs(30));
        drop(s);
    });
    let (mut trigger, _) = ws_client(&srv).await;
    // Wait until the stalled client is in the room.
    assert!(
        eventually(Duration::from_secs(5), || srv.sessions() == 2).await,
        "both sessions open"
    );
    within(Duration::from_secs(5), "stalled client joined", async {
        loop {
            let r = trigger.call(1, json!(["room-members", "slow"])).await;
            if r[0]["members"].as_array().is_some_and(|m| m.len() == 1) {
                break;
            }
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    // 64 MB of broadcasts: far more than the kernel buffers, the transport queue and the
    // session buffer can hold for a client that reads nothing.
    for round in 0..8 {
        let r = trigger
            .call(
                2 + round,
                json!(["flood", {"room": "slow", "count": 128, "size": 65536}]),
            )
            .await;
        assert_eq!(r, json!([{"ok": true}]));
        if srv.sessions() == 1 {
            break;
        }
    }
    assert!(
        eventually(Duration::from_secs(10), || srv.sessions() == 1).await,
        "the stalled session was closed"
    );
    trigger.send(r#"42["echo","unaffected"]"#).await;
    assert_eq!(trigger.recv_text().await, r#"42["echo","unaffected"]"#);
    drop(trigger);
    let _ = done.send(());
    let _ = stalled.join();
}
