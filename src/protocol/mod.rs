//! Pure protocol codecs: text and bytes in, typed packets out, and back. No IO, no actix,
//! tokio or redis here; the actors call into these modules.
//!
//! - [`engineio`]: Engine.IO v4 packets, polling payloads, handshake, session ids, errors.
//! - [`socketio`]: Socket.IO v5 packets and binary attachment reassembly.

pub mod engineio;
pub mod socketio;
