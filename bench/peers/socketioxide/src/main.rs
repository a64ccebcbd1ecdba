//! socketioxide peer for `ferrio-bench`.
//!
//! Serves the subset of ferrio's hub the benchmark drives, on the default namespace:
//!
//! | event | effect | ack |
//! |---|---|---|
//! | `join-room`, room | join room | `{"ok":true,"room":R,"size":N}` |
//! | `to-room`, room, event, ...args | `socket.to(room).emit(event, ...args)` | `{"ok":true}` |
//! | `echo-ack`, ...args | — | the same args |
//!
//! Listens on `HOST` (default 127.0.0.1) / `PORT` (default 3000), uses `WORKERS` tokio worker
//! threads (default 1, like ferrio pinned with `FERRIO_WORKERS=1`), and prints `listening on`
//! when ready.

use std::fmt;

use serde::de::{Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeTuple, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use socketioxide::extract::{AckSender, Data, SocketRef};
use socketioxide::SocketIo;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

/// All the arguments of an event, however many. socketioxide hands a handler's `Data<T>` the
/// first argument only, unless `T` deserializes as a tuple; and it sends a value as several
/// arguments only when it serializes as a tuple. So this type is a tuple of any length both ways.
struct Args(Vec<Value>);

impl<'de> Deserialize<'de> for Args {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ArgsVisitor;
        impl<'de> Visitor<'de> for ArgsVisitor {
            type Value = Args;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("event arguments")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Args, A::Error> {
                let mut args = Vec::new();
                while let Some(v) = seq.next_element::<Value>()? {
                    args.push(v);
                }
                Ok(Args(args))
            }
        }
        d.deserialize_tuple(usize::MAX, ArgsVisitor)
    }
}

impl Serialize for Args {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(self.0.len())?;
        for v in &self.0 {
            t.serialize_element(v)?;
        }
        t.end()
    }
}

fn on_connect(s: SocketRef) {
    s.on(
        "join-room",
        async |s: SocketRef, Data(Args(args)): Data<Args>, ack: AckSender| {
            let Some(room) = args.first().and_then(Value::as_str).map(str::to_string) else {
                ack.send(&json!({"ok": false, "error": "room must be a string"})).ok();
                return;
            };
            s.join(room.clone());
            let size = s.within(room.clone()).sockets().len();
            ack.send(&json!({"ok": true, "room": room, "size": size})).ok();
        },
    );
    s.on(
        "to-room",
        async |s: SocketRef, Data(Args(args)): Data<Args>, ack: AckSender| {
            let mut args = args.into_iter();
            let (Some(Value::String(room)), Some(Value::String(event))) = (args.next(), args.next())
            else {
                ack.send(&json!({"ok": false, "error": "room and event must be strings"})).ok();
                return;
            };
            match s.to(room).emit(&event, &Args(args.collect())).await {
                Ok(()) => ack.send(&json!({"ok": true})).ok(),
                Err(e) => ack.send(&json!({"ok": false, "error": e.to_string()})).ok(),
            };
        },
    );
    s.on("echo-ack", async |Data(args): Data<Args>, ack: AckSender| {
        ack.send(&args).ok();
    });
}

fn main() -> std::io::Result<()> {
    let host = env_or("HOST", "127.0.0.1");
    let port = env_or("PORT", "3000");
    let workers: usize = env_or("WORKERS", "1").parse().unwrap_or(1).max(1);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?
        .block_on(async move {
            let (layer, io) = SocketIo::new_layer();
            io.ns("/", async |s: SocketRef| on_connect(s));
            let app = axum::Router::new().layer(layer);
            let listener = tokio::net::TcpListener::bind(format!("{host}:{port}")).await?;
            println!("socketioxide peer listening on {}", listener.local_addr()?);
            axum::serve(listener, app).await
        })
}
