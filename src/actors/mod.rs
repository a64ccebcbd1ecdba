//! The actors of a node: a socket actor per Engine.IO session ([`socket`]), a room actor per
//! namespace ([`room`]), the WebSocket transport ([`ws`]) and, in a cluster, the Redis bridge.
//! Every message between them is in [`messages`].

pub mod bridge;
pub mod messages;
pub mod room;
pub mod socket;
pub mod ws;
