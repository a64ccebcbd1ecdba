//! The hub plus a few events that tests (and the benchmark) need, written only against the
//! public API. Configured from the environment like the `ferrio` binary.
//!
//! - on connect: emit `welcome` `{"id","ns","auth"}`;
//! - `echo`, …args → emit `echo` with the same args (binary included);
//! - `echo-ack`, …args, ack → ack(…args);
//! - `server-ack`, `{"event","args","timeout_ms"}`, ack → emit `event(…args)` to the sender
//!   with an ack and that timeout, then ack `{"ok":true,"args":[…]}` or
//!   `{"ok":false,"error":"timeout"}`;
//! - `server-disconnect` → the server disconnects this namespace socket;
//! - `server-close` → the server closes the whole Engine.IO session;
//! - `disconnect-reason`, socket id, ack → ack `{"reason": <server-side reason or null>}`;
//! - `node-info`, ack → ack `{"node": <FERRIO_NODE_ID>}` (which cluster node serves this socket);
//! - `server-side-emits`, ack → ack `{"events": [{"ns","data"}…]}`: every `serverSideEmit` this
//!   node received from other nodes or an emitter (the last 1000), oldest first.
//!
//! A `serverSideEmit` with an ack is answered with `{"node": <FERRIO_NODE_ID>, "data": […]}`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use ferrio::config::Config;
use ferrio::hub::Hub;
use ferrio::server::{DisconnectReason, Event, Handler, Namespace, RoomEvent, Server, Socket};
use serde_json::{json, Value};

#[derive(Default)]
struct Testkit {
    hub: Hub,
    reasons: Mutex<HashMap<String, &'static str>>,
    node: String,
    server_side_emits: Mutex<Vec<Value>>,
    /// `TESTKIT_PRESENCE=off` skips the hub's presence notices (benchmarks only: the peers
    /// ferrio is compared with send none, and presence makes building an N-member room cost
    /// N²/2 frames).
    quiet: bool,
}

impl Handler for Testkit {
    fn on_connect(&self, socket: &Socket) {
        socket.emit(
            "welcome",
            vec![json!({"id": socket.id().as_str(), "ns": socket.ns(), "auth": socket.auth()})],
        );
    }

    fn on_event(&self, socket: &Socket, event: Event) {
        let event = match self.hub.handle(socket, event) {
            Ok(()) => return,
            Err(event) => event,
        };
        match event.name.as_str() {
            "echo" => socket.emit_binary("echo", event.args, event.bins),
            "echo-ack" => {
                if let Some(ack) = event.ack {
                    ack.send_binary(event.args, event.bins);
                }
            }
            "server-ack" => {
                let spec = event.args.first().cloned().unwrap_or(Value::Null);
                let name = spec["event"].as_str().unwrap_or("ask").to_owned();
                let args = spec["args"].as_array().cloned().unwrap_or_default();
                let timeout = Duration::from_millis(spec["timeout_ms"].as_u64().unwrap_or(1000));
                // Binary arguments keep their placeholders, which index `event.bins`.
                let fut = socket.emit_with_ack(&name, args, event.bins, timeout);
                let ack = event.ack;
                actix::spawn(async move {
                    let (answer, bins) = match fut.await {
                        Ok(data) => (json!({"ok": true, "args": data.args}), data.bins),
                        Err(e) => (json!({"ok": false, "error": e.to_string()}), vec![]),
                    };
                    if let Some(ack) = ack {
                        ack.send_binary(vec![answer], bins);
                    }
                });
            }
            "server-disconnect" => socket.disconnect(),
            "server-close" => socket.close_session(),
            "disconnect-reason" => {
                let id = event.args.first().and_then(Value::as_str).unwrap_or("");
                let reason = self
                    .reasons
                    .lock()
                    .map(|m| m.get(id).copied())
                    .unwrap_or(None);
                if let Some(ack) = event.ack {
                    ack.send(vec![json!({ "reason": reason })]);
                }
            }
            "node-info" => {
                if let Some(ack) = event.ack {
                    ack.send(vec![json!({ "node": self.node })]);
                }
            }
            "server-side-emits" => {
                let events = self
                    .server_side_emits
                    .lock()
                    .map(|v| v.clone())
                    .unwrap_or_default();
                if let Some(ack) = event.ack {
                    ack.send(vec![json!({ "events": events })]);
                }
            }
            _ => {
                if let Some(ack) = event.ack {
                    ack.send(vec![json!({"ok": false, "error": "unknown event"})]);
                }
            }
        }
    }

    fn on_server_side_emit(&self, ns: &Namespace, data: Vec<Value>) -> Option<Value> {
        if let Ok(mut v) = self.server_side_emits.lock() {
            if v.len() >= 1000 {
                v.remove(0);
            }
            v.push(json!({"ns": ns.name(), "data": data.clone()}));
        }
        Some(json!({"node": self.node, "data": data}))
    }

    fn on_disconnect(&self, socket: &Socket, reason: DisconnectReason) {
        if let Ok(mut m) = self.reasons.lock() {
            if m.len() > 100_000 {
                m.clear();
            }
            m.insert(socket.id().to_string(), reason.as_str());
        }
    }

    fn on_room_event(&self, ns: &Namespace, event: &RoomEvent) {
        if !self.quiet {
            self.hub.on_room_event(ns, event);
        }
    }
}

fn main() -> std::io::Result<()> {
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("testkit: {e}");
            std::process::exit(2);
        }
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    actix_web::rt::System::new().block_on(async move {
        let kit = Testkit {
            node: config.node_id.clone(),
            quiet: std::env::var("TESTKIT_PRESENCE").is_ok_and(|v| v == "off"),
            ..Testkit::default()
        };
        Server::new(config, kit).bind()?.run_until_signal().await
    })
}
