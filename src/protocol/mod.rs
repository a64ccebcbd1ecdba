//! Pure protocol codecs: text and bytes in, typed packets out, and back. No IO, no actix,
//! tokio or redis here; the actors call into these modules.
//!
//! - [`engineio`]: Engine.IO v4 packets, polling payloads, handshake, session ids, errors.
//! - [`socketio`]: Socket.IO v5 packets and binary attachment reassembly.
//! - [`cluster`]: the Redis cluster wire (Node `@socket.io/redis-adapter` classic protocol,
//!   `@socket.io/redis-emitter`) and ferrio's room mirror.

pub mod cluster;
pub mod engineio;
pub mod socketio;
