//! The hub: what the `ferrio` binary does with client events (DESIGN.md, "The hub"), written
//! only against the public API in `crate::server`.
//!
//! | event          | args                 | ack                                         |
//! |----------------|----------------------|---------------------------------------------|
//! | `join-room`    | room                 | `{"ok":true,"room":R,"size":N}`             |
//! | `leave-room`   | room                 | `{"ok":true,"room":R,"size":N}`             |
//! | `delete-room`  | room                 | `{"ok":true,"room":R}`                      |
//! | `list-rooms`   |                      | `{"ok":true,"rooms":[{"room":R,"size":N}]}` |
//! | `to-room`      | room, event, …args   | `{"ok":true}`                               |
//! | `room-members` | room                 | `{"ok":true,"room":R,"members":[ids]}`      |
//!
//! Presence: members of a room receive `join-room` / `leave-room` `{"room":R,"id":I}` when
//! another socket joins or leaves it, whatever caused the change.

use bytes::Bytes;
use serde_json::{json, Value};

use crate::protocol::socketio::is_reserved_event;
use crate::server::{
    AckSender, Event, Handler, JoinError, LeaveCause, Namespace, RoomEvent, Socket,
};

/// Longest room name accepted, in bytes.
pub const MAX_ROOM_BYTES: usize = 256;

/// The default application of the binary.
#[derive(Debug, Default, Clone)]
pub struct Hub;

impl Hub {
    /// A hub.
    pub fn new() -> Self {
        Hub
    }

    /// Handles a hub command; gives the event back when it is not one.
    pub fn handle(&self, socket: &Socket, event: Event) -> Result<(), Event> {
        let reply = Reply(event.ack);
        let (name, args, bins) = (event.name, event.args, event.bins);
        match name.as_str() {
            "list-rooms" => list_rooms(socket, reply),
            "join-room" | "leave-room" | "delete-room" | "room-members" | "to-room" => {
                let room = match room_arg(&args) {
                    Ok(r) => r.to_owned(),
                    Err(e) => {
                        reply.error(e);
                        return Ok(());
                    }
                };
                match name.as_str() {
                    "join-room" => join_room(socket, room, reply),
                    "leave-room" => leave_room(socket, room, reply),
                    "delete-room" => delete_room(socket, room, reply),
                    "room-members" => room_members(socket, room, reply),
                    _ => to_room(socket, room, args, bins, reply),
                }
            }
            _ => {
                return Err(Event {
                    name,
                    args,
                    bins,
                    ack: reply.0,
                })
            }
        }
        Ok(())
    }
}

fn join_room(socket: &Socket, room: String, reply: Reply) {
    // A socket id is no room name for hub clients, their own included (`Socket::join` accepts
    // a socket's own id, as Node does, which would ack ok with a size of 0).
    if room == socket.id().as_str() {
        return reply.error("room is a socket id");
    }
    let fut = socket.join(&room);
    let ns = socket.namespace().clone();
    actix::spawn(async move {
        match fut.await {
            Ok(_) => {
                let size = ns.room_size(&room).await;
                reply.ok(json!({"ok": true, "room": room, "size": size}))
            }
            Err(JoinError::RoomIsSocketId) => reply.error("room is a socket id"),
            Err(JoinError::UnknownSocket) => reply.error("not connected"),
            Err(JoinError::TooManyRooms) => reply.error("too many rooms"),
        }
    });
}

fn leave_room(socket: &Socket, room: String, reply: Reply) {
    let fut = socket.leave(&room);
    let ns = socket.namespace().clone();
    actix::spawn(async move {
        fut.await;
        let size = ns.room_size(&room).await;
        reply.ok(json!({"ok": true, "room": room, "size": size}));
    });
}

fn delete_room(socket: &Socket, room: String, reply: Reply) {
    let ns = socket.namespace().clone();
    actix::spawn(async move {
        let notice = vec![json!({ "room": room })];
        ns.delete_room(&room, Some(("delete-room", notice))).await;
        reply.ok(json!({"ok": true, "room": room}));
    });
}

fn list_rooms(socket: &Socket, reply: Reply) {
    let ns = socket.namespace().clone();
    actix::spawn(async move {
        let rooms: Vec<Value> = ns
            .rooms()
            .await
            .into_iter()
            .map(|(r, n)| json!({"room": r.as_str(), "size": n}))
            .collect();
        reply.ok(json!({"ok": true, "rooms": rooms}));
    });
}

fn room_members(socket: &Socket, room: String, reply: Reply) {
    let ns = socket.namespace().clone();
    actix::spawn(async move {
        let members: Vec<String> = ns
            .members(&room)
            .await
            .into_iter()
            .map(|id| id.to_string())
            .collect();
        reply.ok(json!({"ok": true, "room": room, "members": members}));
    });
}

/// Relays `event(...args)` to the other members of `room`, binary attachments untouched.
fn to_room(socket: &Socket, room: String, args: Vec<Value>, bins: Vec<Bytes>, reply: Reply) {
    let relayed = match args.get(1) {
        Some(Value::String(e)) if is_reserved_event(e) => {
            return reply.error("reserved event name")
        }
        Some(Value::String(e)) => e.clone(),
        _ => return reply.error("event must be a string"),
    };
    let rest: Vec<Value> = args.into_iter().skip(2).collect();
    let sent = socket
        .to(&room)
        .rooms_only()
        .emit_checked(&relayed, rest, bins);
    let ns = socket.namespace().clone();
    actix::spawn(async move {
        match sent.await {
            Err(_) => reply.error("room is a socket id"),
            Ok(_) if ns.is_local_only() => reply.ok(json!({"ok": true, "local_only": true})),
            Ok(_) => reply.ok(json!({"ok": true})),
        }
    });
}

impl Handler for Hub {
    fn on_event(&self, socket: &Socket, event: Event) {
        if let Err(event) = self.handle(socket, event) {
            if let Some(ack) = event.ack {
                ack.send(vec![json!({"ok": false, "error": "unknown event"})]);
            }
        }
    }

    fn on_room_event(&self, ns: &Namespace, event: &RoomEvent) {
        presence(ns, event);
    }
}

/// Tells the other members of a room that a socket joined or left it.
pub fn presence(ns: &Namespace, event: &RoomEvent) {
    match event {
        RoomEvent::Joined { room, id } => {
            ns.to(room.as_str()).rooms_only().except(id.as_str()).emit(
                "join-room",
                vec![json!({"room": room.as_str(), "id": id.as_str()})],
            )
        }
        RoomEvent::Left {
            room,
            id,
            cause: LeaveCause::Leave | LeaveCause::Disconnect,
        } => ns.to(room.as_str()).rooms_only().except(id.as_str()).emit(
            "leave-room",
            vec![json!({"room": room.as_str(), "id": id.as_str()})],
        ),
        _ => {}
    }
}

/// The room argument: a non-empty string of at most [`MAX_ROOM_BYTES`].
fn room_arg(args: &[Value]) -> Result<&str, &'static str> {
    match args.first() {
        Some(Value::String(r)) if !r.is_empty() && r.len() <= MAX_ROOM_BYTES => Ok(r),
        Some(Value::String(r)) if r.is_empty() => Err("room must not be empty"),
        Some(Value::String(_)) => Err("room name longer than 256 bytes"),
        _ => Err("room must be a string"),
    }
}

/// The optional ack of a hub command.
struct Reply(Option<AckSender>);

impl Reply {
    fn ok(self, value: Value) {
        if let Some(ack) = self.0 {
            ack.send(vec![value]);
        }
    }

    fn error(self, error: &str) {
        self.ok(json!({"ok": false, "error": error}));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_arg_accepts_names_up_to_256_bytes_and_refuses_the_rest() {
        assert_eq!(room_arg(&[json!("a")]), Ok("a"));
        assert!(room_arg(&[json!("x".repeat(256))]).is_ok());
        assert!(room_arg(&[json!("x".repeat(257))]).is_err());
        assert!(room_arg(&[json!("")]).is_err());
        assert!(room_arg(&[json!(1)]).is_err());
        assert!(room_arg(&[]).is_err());
    }
}
