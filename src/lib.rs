//! ferrio: a Socket.IO v5 / Engine.IO v4 server on actix actors that clusters over Redis.
//!
//! Layers, dependencies pointing down only:
//! - [`hub`]: the default application of the binary, written against [`server`]'s public API;
//! - [`server`]: the public API (handlers, sockets, namespaces, broadcasts) and HTTP wiring;
//! - [`actors`]: the socket actor per session, the room actor per namespace, the WebSocket
//!   transport, and their messages;
//! - [`protocol`]: pure codecs (Engine.IO, Socket.IO), no IO;
//! - [`config`]: the environment contract, validated once.

pub mod actors;
pub mod config;
pub mod hub;
pub mod protocol;
pub mod server;
