//! The raw TCP side of WebSocket upgrades: ferrio takes the connection out of the HTTP layer
//! (src/server/http.rs `upgrade`, src/actors/ws.rs), so what the HTTP layer used to do is
//! checked here with a hand-made client: refusals are plain HTTP answers, bytes sent right
//! behind the handshake are not lost, and the close handshake completes before the TCP close.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

/// A masked client frame (RFC 6455) with opcode `op`.
fn client_frame(op: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37u8, 0xfa, 0x21, 0x3d];
    let mut f = vec![0x80 | op];
    assert!(payload.len() < 126);
    f.push(0x80 | payload.len() as u8);
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

fn port(srv: &TestServer) -> u16 {
    srv.http("/")
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .expect("port")
}

fn upgrade_request(port: u16, target: &str, key: bool) -> String {
    let key = if key {
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    } else {
        ""
    };
    format!(
        "GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\n{key}Sec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// Reads until `done` holds for what arrived, or the peer closes, or 5 s pass.
fn read_until(s: &mut TcpStream, done: impl Fn(&[u8]) -> bool) -> (Vec<u8>, bool) {
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline && !done(&seen) {
        match s.read(&mut buf) {
            Ok(0) => return (seen, true),
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return (seen, true),
        }
    }
    (seen, false)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Sends `request` and returns the whole answer (the server closes after refusing).
fn refused(port: u16, request: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(request.as_bytes()).expect("write");
    let (seen, closed) = read_until(&mut s, |_| false);
    assert!(closed, "the connection is closed after a refusal");
    String::from_utf8_lossy(&seen).into_owned()
}

#[actix_rt::test]
async fn upgrade_requests_that_cannot_be_served_get_a_plain_http_answer() {
    let srv = TestServer::start(config());
    let port = port(&srv);
    let answers = actix_rt::task::spawn_blocking(move || {
        [
            upgrade_request(port, "/socket.io/?EIO=4&transport=websocket&sid=nope", true),
            upgrade_request(port, "/socket.io/?EIO=3&transport=websocket", true),
            upgrade_request(port, "/socket.io/?EIO=4&transport=websocket", false),
            upgrade_request(port, "/socket.io/?EIO=4&transport=carrier-pigeon", true),
            upgrade_request(port, "/elsewhere/?EIO=4&transport=websocket", true),
        ]
        .map(|r| refused(port, &r))
    })
    .await
    .expect("client thread");
    let expect = [
        (
            "HTTP/1.1 400",
            r#"{"code":1,"message":"Session ID unknown"}"#,
        ),
        (
            "HTTP/1.1 400",
            r#"{"code":5,"message":"Unsupported protocol version"}"#,
        ),
        ("HTTP/1.1 400", r#"{"code":3,"message":"Bad request"}"#),
        (
            "HTTP/1.1 400",
            r#"{"code":0,"message":"Transport unknown"}"#,
        ),
        ("HTTP/1.1 404", "Not Found"),
    ];
    for (answer, (status, body)) in answers.iter().zip(expect) {
        assert!(answer.starts_with(status), "{answer:?}");
        assert!(answer.ends_with(body), "{answer:?} ends with {body}");
        assert!(
            answer.contains(&format!("content-length: {}\r\n", body.len())),
            "{answer:?}"
        );
    }
    assert_eq!(srv.sessions(), 0, "no session was opened");
    // The server is still fine.
    let (mut ws, _) = ws_client(&srv).await;
    ws.send(r#"42["echo","still here"]"#).await;
    assert_eq!(ws.recv_text().await, r#"42["echo","still here"]"#);
}

#[actix_rt::test]
async fn frames_sent_right_behind_the_handshake_are_not_lost() {
    let srv = TestServer::start(config());
    let port = port(&srv);
    let seen = actix_rt::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        // The handshake, the CONNECT and an event in a single write.
        let mut bytes =
            upgrade_request(port, "/socket.io/?EIO=4&transport=websocket", true).into_bytes();
        bytes.extend(client_frame(1, b"40"));
        bytes.extend(client_frame(1, br#"42["echo","early"]"#));
        s.write_all(&bytes).expect("write");
        read_until(&mut s, |seen| contains(seen, br#"42["echo","early"]"#)).0
    })
    .await
    .expect("client thread");
    let text = String::from_utf8_lossy(&seen);
    assert!(
        text.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{text:?}"
    );
    assert!(
        text.contains("sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
        "{text:?}"
    );
    assert!(
        text.contains(r#""maxPayload""#),
        "the open packet: {text:?}"
    );
    assert!(
        text.contains(r#"40{"sid":"#),
        "the CONNECT answer: {text:?}"
    );
    assert!(text.contains(r#"42["echo","early"]"#), "the echo: {text:?}");
}

#[actix_rt::test]
async fn a_client_close_frame_is_answered_before_the_connection_ends() {
    let srv = TestServer::start(config());
    let port = port(&srv);
    let (seen, closed) = actix_rt::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.write_all(
            upgrade_request(port, "/socket.io/?EIO=4&transport=websocket", true).as_bytes(),
        )
        .expect("write");
        let (seen, _) = read_until(&mut s, |seen| contains(seen, b"\"maxPayload\""));
        assert!(seen.starts_with(b"HTTP/1.1 101"));
        // Close with 1000, then keep reading: the answer must arrive, then the FIN.
        s.write_all(&client_frame(8, &1000u16.to_be_bytes()))
            .expect("close");
        read_until(&mut s, |_| false)
    })
    .await
    .expect("client thread");
    assert!(closed, "the server closed the TCP connection");
    assert_eq!(
        seen,
        vec![0x88, 0x02, 0x03, 0xe8],
        "one close frame, code 1000"
    );
    assert!(
        eventually(Duration::from_secs(5), || srv.sessions() == 0).await,
        "the session ended"
    );
}

/// Opens a session over WebSocket on `s` (already connected) and checks the echo works.
fn open_and_echo(s: &mut TcpStream, port: u16, split: bool) -> String {
    let request = upgrade_request(port, "/socket.io/?EIO=4&transport=websocket", true);
    if split {
        // The head in two segments: the first look at the connection sees half of it.
        let (a, b) = request.as_bytes().split_at(request.len() / 2);
        s.write_all(a).expect("write");
        s.flush().expect("flush");
        std::thread::sleep(Duration::from_millis(50));
        s.write_all(b).expect("write");
    } else {
        s.write_all(request.as_bytes()).expect("write");
    }
    let (seen, _) = read_until(s, |seen| contains(seen, b"\"maxPayload\""));
    let mut frames = client_frame(1, b"40");
    frames.extend(client_frame(1, br#"42["echo","again"]"#));
    s.write_all(&frames).expect("write");
    let (more, _) = read_until(s, |seen| contains(seen, br#"42["echo","again"]"#));
    String::from_utf8_lossy(&[seen, more].concat()).into_owned()
}

#[actix_rt::test]
async fn an_upgrade_after_other_requests_on_the_same_connection_works() {
    let srv = TestServer::start(config());
    let port = port(&srv);
    let text = actix_rt::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.write_all(format!("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes())
            .expect("write");
        let (seen, _) = read_until(&mut s, |seen| contains(seen, b"ok\n"));
        assert!(
            seen.starts_with(b"HTTP/1.1 200"),
            "{:?}",
            String::from_utf8_lossy(&seen)
        );
        open_and_echo(&mut s, port, false)
    })
    .await
    .expect("client thread");
    assert!(text.starts_with("HTTP/1.1 101"), "{text:?}");
    assert!(text.contains(r#"42["echo","again"]"#), "{text:?}");
}

#[actix_rt::test]
async fn an_upgrade_head_that_arrives_in_pieces_works() {
    let srv = TestServer::start(config());
    let port = port(&srv);
    let text = actix_rt::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_nodelay(true).expect("nodelay");
        open_and_echo(&mut s, port, true)
    })
    .await
    .expect("client thread");
    assert!(text.starts_with("HTTP/1.1 101"), "{text:?}");
    assert!(text.contains(r#"42["echo","again"]"#), "{text:?}");
}
