//! The server the official protocol test suites expect (socketio/engine.io-protocol and
//! socketio/socket.io-protocol, `test-suite/`), written only against ferrio's public API:
//! - `/engine.io/`: a raw Engine.IO server echoing every text and binary message;
//! - `/socket.io/`: namespaces `/` and `/custom`; on connect emit `auth` with the CONNECT
//!   payload; in `/`, `message` → `message-back` with the same arguments, `message-with-ack` →
//!   ack with the same arguments; any other namespace gets `Invalid namespace`.
//!
//! Listens on `FERRIO_HOST`/`FERRIO_PORT` (default 3000) with the suites' timings: ping interval
//! 300 ms, ping timeout 200 ms, connect timeout 1000 ms, max payload 1000000, CORS `*`.
//!
//! `cargo run --release --example conformance`, then `../shared/conformance/run.sh 3000`.

use std::time::Duration;

use ferrio::config::{Config, CorsOrigins, NamespacePattern};
use ferrio::server::{EngineHandler, EngineSocket, Event, Frame, Handler, Server, Socket};

struct Echo;

impl EngineHandler for Echo {
    fn on_message(&self, socket: &EngineSocket, message: Frame) {
        socket.send(message);
    }
}

struct Suite;

impl Handler for Suite {
    fn on_connect(&self, socket: &Socket) {
        socket.emit("auth", vec![socket.auth().clone()]);
    }

    fn on_event(&self, socket: &Socket, event: Event) {
        if socket.ns() != "/" {
            return;
        }
        match event.name.as_str() {
            "message" => socket.emit_binary("message-back", event.args, event.bins),
            "message-with-ack" => {
                if let Some(ack) = event.ack {
                    ack.send_binary(event.args, event.bins);
                }
            }
            _ => {}
        }
    }
}

fn main() -> std::io::Result<()> {
    let mut config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("conformance: {e}");
            std::process::exit(2);
        }
    };
    config.ping_interval = Duration::from_millis(300);
    config.ping_timeout = Duration::from_millis(200);
    config.connect_timeout = Duration::from_millis(1000);
    config.max_payload = 1_000_000;
    config.cors_origins = Some(CorsOrigins::Any);
    config.namespaces = vec![
        NamespacePattern::Exact("/".into()),
        NamespacePattern::Exact("/custom".into()),
    ];
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    actix_web::rt::System::new().block_on(async move {
        Server::new(config, Suite)
            .engine("/engine.io/", Echo)
            .bind()?
            .run_until_signal()
            .await
    })
}
