//! The room actor: one per namespace on a node.
//!
//! It owns the room index (room → members, socket → rooms and its `Recipient`), does local
//! fan-out and announces room lifecycle. It never parses or encodes: packets arrive encoded once
//! as `Arc<Encoded>` and the same bytes go to every recipient.
//!
//! # Flow: a broadcast (`to-room` on one node)
//! ```text
//! socket actor          room actor (ns)                     socket actors
//!   | Broadcast{target,   |                                     |
//!   |   Arc<Encoded>} --> | members(rooms) - members(except)    |
//!   |                     |   (a HashSet: each socket once) --> | ToSocket::Deliver (try_send)
//!   |                     |-- RoomLifecycle / Broadcast ------> bridge (cluster issue)
//! ```
//!
//! # Flow: a slow client, a busy server
//! The room actor `try_send`s into the socket actor's bounded mailbox. A full mailbox means the
//! socket actors are behind (the server is busy), not that a client is slow: a volatile packet
//! is dropped, any other is delivered past the bound (counted). Slow *clients* are the socket
//! actor's business: it closes a session whose client stopped reading (see `socket.rs`).

use std::collections::{HashMap, HashSet};

/// The index's hasher: foldhash, seeded per process (room names come from clients). SipHash
/// was 3–5% of a fan-out profile, hashing 20-character socket ids.
type Hasher = foldhash::fast::RandomState;
type Map<K, V> = HashMap<K, V, Hasher>;
type Set<T> = HashSet<T, Hasher>;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use actix::dev::SendError;
use actix::prelude::*;

use super::messages::*;
use crate::server::{Cluster, Handler as AppHandler, Namespace};

/// Rooms one socket may be in through `join` (its own-id room not counted), a bound on what
/// one client can make the index hold.
pub const MAX_ROOMS_PER_SOCKET: usize = 1024;

/// Counts of what the room actors had to drop, for logs and metrics.
#[derive(Debug, Default)]
pub struct RoomStats {
    /// Volatile packets dropped because a socket's mailbox was full.
    pub volatile_dropped: AtomicU64,
    /// Packets delivered past a full mailbox (the socket actors were behind).
    pub mailbox_overflow: AtomicU64,
}

/// One socket of the namespace as the index knows it.
struct Member {
    /// Where deliveries go (the socket actor of the session).
    conn: Recipient<ToSocket>,
    /// Rooms the socket is in, its own-id room included.
    rooms: Set<Room>,
    info: Arc<SocketInfo>,
}

/// The room index and fan-out of one namespace.
pub struct RoomActor {
    /// The namespace name (`/`, `/admin`, …).
    ns: Arc<str>,
    /// Socket → its rooms and its recipient.
    sockets: Map<SocketId, Member>,
    /// Room → members. Socket-id rooms are not stored here: they are implied by `sockets`.
    rooms: Map<Room, Set<SocketId>>,
    /// The application, told about room lifecycle.
    app: Arc<dyn AppHandler>,
    /// The Redis bridge in a cluster: told about room lifecycle (the mirror).
    bridge: Option<Cluster>,
    mailbox: usize,
    stats: Arc<RoomStats>,
}

impl RoomActor {
    /// A room actor for namespace `ns`.
    pub(crate) fn new(
        ns: Arc<str>,
        app: Arc<dyn AppHandler>,
        bridge: Option<Cluster>,
        mailbox: usize,
        stats: Arc<RoomStats>,
    ) -> Self {
        RoomActor {
            ns,
            sockets: Map::default(),
            rooms: Map::default(),
            app,
            bridge,
            mailbox,
            stats,
        }
    }

    fn announce(&self, ctx: &Context<Self>, event: RoomEvent) {
        // The bridge hears it first, so that on every other node the mirror is updated before
        // the presence broadcast the application may send arrives (a client told "X left"
        // then asking for the size must see X gone). Lifecycle is never dropped: the mirror of
        // every other node depends on it.
        if let Some(b) = &self.bridge {
            b.do_send(RoomLifecycle {
                ns: self.ns.clone(),
                event: event.clone(),
            });
        }
        let handle = Namespace::from_parts(self.ns.clone(), ctx.address(), self.bridge.clone());
        self.app.on_room_event(&handle, &event);
    }

    /// The sockets a target designates, each once.
    fn resolve(&self, target: &Target) -> Vec<SocketId> {
        let excluded = self.members_of_any(&target.except);
        let pick = |id: &SocketId| !excluded.contains(id);
        if target.rooms.is_empty() {
            return self.sockets.keys().filter(|id| pick(id)).cloned().collect();
        }
        let ids_too = !target.rooms_only;
        if target.rooms.len() == 1 && excluded.is_empty() {
            return self.members_of(&target.rooms[0], ids_too);
        }
        let mut all = Set::default();
        for r in &target.rooms {
            all.extend(self.members_of(r, ids_too));
        }
        all.into_iter().filter(|id| pick(id)).collect()
    }

    /// Members of `room`; with `ids_too`, a socket id names that socket's own room.
    fn members_of(&self, room: &Room, ids_too: bool) -> Vec<SocketId> {
        if let Some(set) = self.rooms.get(room) {
            return set.iter().cloned().collect();
        }
        let as_id = SocketId(room.0.clone());
        if ids_too && self.sockets.contains_key(&as_id) {
            return vec![as_id];
        }
        Vec::new()
    }

    fn members_of_any(&self, rooms: &[Room]) -> Set<SocketId> {
        let mut set = Set::default();
        for r in rooms {
            set.extend(self.members_of(r, true));
        }
        set
    }

    fn deliver(&self, id: &SocketId, packet: &Arc<Encoded>, volatile: bool) -> bool {
        let Some(member) = self.sockets.get(id) else {
            return false;
        };
        let msg = ToSocket::Deliver {
            packet: packet.clone(),
            volatile,
        };
        match member.conn.try_send(msg) {
            Ok(()) => {}
            Err(SendError::Full(_)) if volatile => {
                self.stats.volatile_dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(SendError::Full(msg)) => {
                // do_send ignores the bound: the server is behind, nobody is at fault.
                self.stats.mailbox_overflow.fetch_add(1, Ordering::Relaxed);
                member.conn.do_send(msg);
            }
            Err(SendError::Closed(_)) => {}
        }
        true
    }

    /// Adds `id` to `room`; announces creation and the join.
    fn join(&mut self, ctx: &Context<Self>, id: &SocketId, room: &Room) -> JoinOutcome {
        if room.as_str() == id.as_str() {
            return JoinOutcome {
                size: 1,
                changed: false,
            };
        }
        let Some(member) = self.sockets.get_mut(id) else {
            return JoinOutcome {
                size: 0,
                changed: false,
            };
        };
        if !member.rooms.insert(room.clone()) {
            let size = self.rooms.get(room).map_or(0, Set::len);
            return JoinOutcome {
                size,
                changed: false,
            };
        }
        let created = !self.rooms.contains_key(room);
        let set = self.rooms.entry(room.clone()).or_default();
        set.insert(id.clone());
        let size = set.len();
        if created {
            self.announce(ctx, RoomEvent::Created { room: room.clone() });
        }
        self.announce(
            ctx,
            RoomEvent::Joined {
                room: room.clone(),
                id: id.clone(),
            },
        );
        JoinOutcome {
            size,
            changed: true,
        }
    }

    /// Removes `id` from `room`; announces the leave and the deletion of an emptied room.
    fn leave(
        &mut self,
        ctx: &Context<Self>,
        id: &SocketId,
        room: &Room,
        cause: LeaveCause,
    ) -> JoinOutcome {
        let removed = match self.sockets.get_mut(id) {
            Some(m) if room.as_str() != id.as_str() => m.rooms.remove(room),
            _ => false,
        };
        let Some(set) = self.rooms.get_mut(room) else {
            return JoinOutcome {
                size: 0,
                changed: false,
            };
        };
        if !removed {
            return JoinOutcome {
                size: set.len(),
                changed: false,
            };
        }
        set.remove(id);
        let size = set.len();
        if size == 0 {
            self.rooms.remove(room);
        }
        self.announce(
            ctx,
            RoomEvent::Left {
                room: room.clone(),
                id: id.clone(),
                cause,
            },
        );
        if size == 0 {
            self.announce(ctx, RoomEvent::Deleted { room: room.clone() });
        }
        JoinOutcome {
            size,
            changed: true,
        }
    }

    fn remove_socket(&mut self, ctx: &Context<Self>, id: &SocketId) {
        let Some(member) = self.sockets.get(id) else {
            return;
        };
        let mut rooms: Vec<Room> = member
            .rooms
            .iter()
            .filter(|r| r.as_str() != id.as_str())
            .cloned()
            .collect();
        rooms.sort();
        for room in rooms {
            self.leave(ctx, id, &room, LeaveCause::Disconnect);
        }
        self.sockets.remove(id);
    }
}

impl Actor for RoomActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.mailbox);
        log::debug!("room actor started ns={}", self.ns);
    }
}

impl Handler<AddSocket> for RoomActor {
    type Result = ();
    fn handle(&mut self, msg: AddSocket, _: &mut Context<Self>) {
        let mut rooms = Set::with_capacity_and_hasher(1, Hasher::default());
        rooms.insert(Room(msg.id.0.clone()));
        self.sockets.insert(
            msg.id,
            Member {
                conn: msg.conn,
                rooms,
                info: msg.info,
            },
        );
    }
}

impl Handler<RemoveSocket> for RoomActor {
    type Result = ();
    fn handle(&mut self, msg: RemoveSocket, ctx: &mut Context<Self>) {
        self.remove_socket(ctx, &msg.id);
    }
}

impl Handler<Join> for RoomActor {
    type Result = Result<JoinOutcome, JoinError>;
    fn handle(&mut self, msg: Join, ctx: &mut Context<Self>) -> Self::Result {
        if !self.sockets.contains_key(&msg.id) {
            return Err(JoinError::UnknownSocket);
        }
        if msg.room.as_str() != msg.id.as_str()
            && self.sockets.contains_key(&SocketId(msg.room.0.clone()))
        {
            return Err(JoinError::RoomIsSocketId);
        }
        if let Some(m) = self.sockets.get(&msg.id) {
            if m.rooms.len() > MAX_ROOMS_PER_SOCKET && !m.rooms.contains(&msg.room) {
                return Err(JoinError::TooManyRooms);
            }
        }
        Ok(self.join(ctx, &msg.id, &msg.room))
    }
}

impl Handler<Leave> for RoomActor {
    type Result = MessageResult<Leave>;
    fn handle(&mut self, msg: Leave, ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(self.leave(ctx, &msg.id, &msg.room, LeaveCause::Leave))
    }
}

impl Handler<Broadcast> for RoomActor {
    type Result = Result<usize, RoomIsSocketId>;
    fn handle(&mut self, msg: Broadcast, _: &mut Context<Self>) -> Self::Result {
        if msg.target.rooms_only
            && msg
                .target
                .rooms
                .iter()
                .any(|r| self.sockets.contains_key(&SocketId(r.0.clone())))
        {
            return Err(RoomIsSocketId);
        }
        let target = &msg.target;
        // The common case (one room, maybe minus a few sockets): walk the room's members in
        // place instead of collecting them first.
        if let [room] = target.rooms.as_slice() {
            if let Some(members) = self.rooms.get(room) {
                let excluded = self.members_of_any(&target.except);
                let mut n = 0;
                for id in members.iter().filter(|id| !excluded.contains(*id)) {
                    n += usize::from(self.deliver(id, &msg.packet, msg.volatile));
                }
                return Ok(n);
            }
        }
        let ids = self.resolve(target);
        for id in &ids {
            self.deliver(id, &msg.packet, msg.volatile);
        }
        Ok(ids.len())
    }
}

impl Handler<ListRooms> for RoomActor {
    type Result = MessageResult<ListRooms>;
    fn handle(&mut self, _: ListRooms, _: &mut Context<Self>) -> Self::Result {
        let mut rooms: Vec<(Room, usize)> = self
            .rooms
            .iter()
            .map(|(r, m)| (r.clone(), m.len()))
            .collect();
        rooms.sort();
        MessageResult(rooms)
    }
}

impl Handler<RoomMembers> for RoomActor {
    type Result = MessageResult<RoomMembers>;
    fn handle(&mut self, msg: RoomMembers, _: &mut Context<Self>) -> Self::Result {
        let mut ids = self.members_of(&msg.room, false);
        ids.sort();
        MessageResult(ids)
    }
}

impl Handler<DeleteRoom> for RoomActor {
    type Result = usize;
    fn handle(&mut self, msg: DeleteRoom, ctx: &mut Context<Self>) -> usize {
        let Some(members) = self.rooms.get(&msg.room) else {
            return 0;
        };
        let mut ids: Vec<SocketId> = members.iter().cloned().collect();
        ids.sort();
        if let Some(notice) = &msg.notice {
            for id in &ids {
                self.deliver(id, notice, false);
            }
        }
        for id in &ids {
            self.leave(ctx, id, &msg.room, LeaveCause::Deleted);
        }
        ids.len()
    }
}

impl Handler<SocketsJoin> for RoomActor {
    type Result = ();
    fn handle(&mut self, msg: SocketsJoin, ctx: &mut Context<Self>) {
        for id in self.resolve(&msg.target) {
            for room in &msg.rooms {
                self.join(ctx, &id, room);
            }
        }
    }
}

impl Handler<SocketsLeave> for RoomActor {
    type Result = ();
    fn handle(&mut self, msg: SocketsLeave, ctx: &mut Context<Self>) {
        for id in self.resolve(&msg.target) {
            for room in &msg.rooms {
                self.leave(ctx, &id, room, LeaveCause::Leave);
            }
        }
    }
}

impl Handler<DisconnectSockets> for RoomActor {
    type Result = ();
    fn handle(&mut self, msg: DisconnectSockets, _: &mut Context<Self>) {
        for id in self.resolve(&msg.target) {
            if let Some(m) = self.sockets.get(&id) {
                let order = if msg.close {
                    ToSocket::Close {
                        reason: DisconnectReason::ForcedClose,
                    }
                } else {
                    ToSocket::Disconnect {
                        id: id.clone(),
                        reason: DisconnectReason::ServerNamespaceDisconnect,
                    }
                };
                m.conn.do_send(order);
            }
        }
    }
}

impl Handler<FetchSockets> for RoomActor {
    type Result = MessageResult<FetchSockets>;
    fn handle(&mut self, msg: FetchSockets, _: &mut Context<Self>) -> Self::Result {
        let mut out = Vec::new();
        for id in self.resolve(&msg.target) {
            if let Some(m) = self.sockets.get(&id) {
                let mut rooms: Vec<Room> = m.rooms.iter().cloned().collect();
                rooms.sort();
                out.push((m.info.clone(), rooms));
            }
        }
        MessageResult(out)
    }
}

impl Handler<BroadcastWithAck> for RoomActor {
    type Result = usize;
    fn handle(&mut self, msg: BroadcastWithAck, _: &mut Context<Self>) -> usize {
        let ids = self.resolve(&msg.target);
        let mut sent = 0;
        for id in &ids {
            if let Some(m) = self.sockets.get(id) {
                let order = ToSocket::DeliverWithAck {
                    id: id.clone(),
                    data: msg.data.clone(),
                    bins: msg.bins.clone(),
                    timeout: msg.timeout,
                    acks: msg.acks.clone(),
                };
                if m.conn.try_send(order).is_ok() {
                    sent += 1;
                }
            }
        }
        sent
    }
}
