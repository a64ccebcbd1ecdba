//! The Redis bridge: one actor per node, the only code that knows Redis.
//!
//! It speaks the classic protocol of `@socket.io/redis-adapter` 8.x and obeys
//! `@socket.io/redis-emitter` 5.x (codec: `crate::protocol::cluster`), so ferrio nodes, Node
//! nodes and emitters share one cluster. On top, ferrio nodes mirror their room lifecycle on a
//! channel of their own, so sizes, lists and members are answered from memory.
//!
//! # Flow: `to-room` on node A reaches node B
//! ```text
//! node A: socket actor --Broadcast--> room actor A (local fan-out)
//!                      --Publish----> bridge A --PUBLISH <p>#<ns>#<room>#--> Redis
//! node B: Redis --pmessage--> bridge B: uid is not ours, nsp matches
//!                      --Broadcast{local_origin:false}--> room actor B (local fan-out only,
//!                                                          never published again)
//! ```
//!
//! # Flow: an emitter's broadcast or `socketsJoin`
//! ```text
//! emitter --PUBLISH <p>#/#room#  [ "emitter", {type:2,data,nsp}, {rooms,except,flags} ]
//!         --> every bridge: decode, room actor Broadcast (local only)
//! emitter --PUBLISH <p>-request#/#  {"type":2,"opts":{rooms,except},"rooms":[x]}
//!         --> every bridge: room actor SocketsJoin --> RoomEvent::Joined --> presence + mirror
//! ```
//!
//! # Supervision
//! A connection task owns the Redis connections of one epoch: it subscribes, pumps messages into
//! the bridge, pipelines publishes. When Redis goes away the task ends, the bridge marks the
//! node not ready (`/readyz` 503), counts and logs what it could not publish, and the task
//! reconnects with backoff (100 ms doubling to 5 s), then resubscribes and asks the other ferrio
//! nodes for a fresh snapshot. Local delivery never waits for Redis.
//!
//! # Node liveness
//! Every node publishes a heartbeat each [`HEARTBEAT`]; a node not heard from for
//! [`NODE_TIMEOUT`] leaves every other node's view (its members leave their rooms, with
//! presence for local members). A clean stop says `goodbye`. Only a node that reaches Redis
//! judges the others: while its own link is down it drops nobody, and on reconnecting it gives
//! every known node a fresh [`NODE_TIMEOUT`] (otherwise a Redis outage would tell every client
//! that all members on other nodes left).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;
use futures_util::StreamExt;
use redis::aio::{MultiplexedConnection, PubSubSink};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use super::messages::*;
use super::room::RoomActor;
use crate::protocol::cluster::{
    self, BroadcastFlags, BroadcastMessage, BroadcastOptions, BroadcastPacket, Channel,
    ChannelNames, EventData, MirrorMessage, MirrorNamespace, MirrorRoom, Payload, RemoteSocket,
    Request, RequestKind, Response, SocketSelector,
};
use crate::protocol::engineio;
use crate::server::{Cluster, Handler as AppHandler, Namespace};

/// How often a node says it is alive.
pub const HEARTBEAT: Duration = Duration::from_millis(1000);
/// Silence after which a node is taken for dead.
pub const NODE_TIMEOUT: Duration = Duration::from_millis(3500);
/// Most requests this node waits on at once; more are refused at once.
const MAX_PENDING: usize = 10_000;

/// Counters of what the bridge could not do.
#[derive(Debug, Default)]
pub struct BridgeStats {
    /// Publishes dropped because Redis was unreachable.
    pub lost_while_down: AtomicU64,
    /// Publishes dropped because the bridge's queue was full.
    pub dropped_full: AtomicU64,
    /// Messages from Redis that did not decode.
    pub bad_messages: AtomicU64,
}

/// One namespace as the bridge serves it.
struct NsState {
    /// This node's adapter uid for the namespace (Node keeps one per namespace too).
    uid: String,
    room: Addr<RoomActor>,
    /// `PUBSUB NUMSUB` of the request channel, refreshed each heartbeat.
    members: usize,
}

/// What the bridge knows of another ferrio node.
struct RemoteNode {
    last_seen: Instant,
    seq: u64,
    namespaces: HashSet<String>,
    /// ns → room → members on that node.
    rooms: HashMap<String, HashMap<String, HashSet<String>>>,
    /// A snapshot arrived since its last hello (until then, heartbeats ask for one).
    synced: bool,
}

/// A request of ours waiting for replies.
struct Pending {
    expected: usize,
    got: usize,
    sockets: Vec<RemoteSocket>,
    rooms: Vec<String>,
    acks: Vec<Value>,
    reply: PendingReply,
    timer: SpawnHandle,
}

enum PendingReply {
    Fetch(oneshot::Sender<Vec<RemoteSocket>>),
    AllRooms(oneshot::Sender<Vec<String>>),
    ServerSideEmit(oneshot::Sender<Result<Vec<Value>, Vec<Value>>>),
}

/// The connection of the current epoch, when Redis is up.
struct Link {
    conn: MultiplexedConnection,
    sink: PubSubSink,
    out: mpsc::Sender<(String, Vec<u8>)>,
}

/// The Redis bridge actor.
pub struct Bridge {
    node: String,
    url: String,
    names: ChannelNames,
    request_timeout: Duration,
    mailbox: usize,
    app: Arc<dyn AppHandler>,
    ready: Arc<std::sync::atomic::AtomicBool>,
    namespaces: HashMap<String, NsState>,
    link: Option<Link>,
    seq: u64,
    remote: HashMap<String, RemoteNode>,
    /// This node's rooms as announced on the mirror (ns → room → members), kept by the
    /// lifecycle handler, so that a snapshot always matches the `seq` it is sent with.
    local: HashMap<String, HashMap<String, HashSet<String>>>,
    /// Counts Redis connections, so that work begun for one is dropped if it went away.
    epoch: u64,
    pending: HashMap<String, Pending>,
    stats: Arc<BridgeStats>,
    /// When the last "lost while down" summary was logged.
    last_loss_log: Option<Instant>,
}

impl Bridge {
    /// A bridge for node `node`, connecting to `url`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        node: String,
        url: String,
        prefix: &str,
        request_timeout: Duration,
        mailbox: usize,
        app: Arc<dyn AppHandler>,
        ready: Arc<std::sync::atomic::AtomicBool>,
        stats: Arc<BridgeStats>,
    ) -> Self {
        Bridge {
            node,
            url,
            names: ChannelNames::new(prefix),
            request_timeout,
            mailbox,
            app,
            ready,
            namespaces: HashMap::new(),
            link: None,
            seq: 0,
            remote: HashMap::new(),
            local: HashMap::new(),
            epoch: 0,
            pending: HashMap::new(),
            stats,
            last_loss_log: None,
        }
    }

    // -- publishing --------------------------------------------------------------------------

    fn publish(&mut self, channel: String, payload: Vec<u8>) -> bool {
        let Some(link) = &self.link else {
            self.stats.lost_while_down.fetch_add(1, Ordering::Relaxed);
            self.log_loss();
            return false;
        };
        match link.out.try_send((channel, payload)) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                let n = self.stats.dropped_full.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    log::warn!("bridge queue full: dropped={} publishes so far", n);
                }
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.stats.lost_while_down.fetch_add(1, Ordering::Relaxed);
                self.log_loss();
                false
            }
        }
    }

    fn log_loss(&mut self) {
        let now = Instant::now();
        if self
            .last_loss_log
            .is_none_or(|t| now.duration_since(t) > Duration::from_secs(5))
        {
            self.last_loss_log = Some(now);
            log::warn!(
                "redis unreachable: not published (local delivery only) lost_total={}",
                self.stats.lost_while_down.load(Ordering::Relaxed)
            );
        }
    }

    fn publish_mirror(&mut self, msg: &MirrorMessage) {
        match msg.encode() {
            Ok(bytes) => {
                let ch = self.names.mirror();
                self.publish(ch, bytes);
            }
            Err(e) => log::error!("mirror encode failed: {e}"),
        }
    }

    fn publish_request(&mut self, ns: &str, req: &Request) -> bool {
        match req.encode() {
            Ok(bytes) => {
                let ch = self.names.request(ns);
                self.publish(ch, bytes)
            }
            Err(e) => {
                log::error!("request encode failed: {e}");
                false
            }
        }
    }

    fn publish_response(&mut self, ns: &str, resp: &Response) {
        match resp.encode() {
            Ok(bytes) => {
                let ch = self.names.response(ns);
                self.publish(ch, bytes);
            }
            Err(e) => log::error!("response encode failed: {e}"),
        }
    }

    fn served_namespaces(&self) -> Vec<String> {
        let mut v: Vec<String> = self.namespaces.keys().cloned().collect();
        v.sort();
        v
    }

    fn subscribe_ns(&self, ns: &str) {
        let Some(link) = &self.link else { return };
        let mut sink = link.sink.clone();
        let pattern = self.names.broadcast_pattern(ns);
        let chans = vec![
            self.names.request(ns),
            self.names.response(ns),
            self.names.response_for(
                ns,
                &self
                    .namespaces
                    .get(ns)
                    .map_or_else(String::new, |s| s.uid.clone()),
            ),
        ];
        actix::spawn(async move {
            if let Err(e) = sink.psubscribe(&pattern).await {
                log::warn!("psubscribe {pattern} failed: {e}");
            }
            if let Err(e) = sink.subscribe(&chans).await {
                log::warn!("subscribe {:?} failed: {e}", chans);
            }
        });
    }

    // -- the view of other ferrio nodes --------------------------------------------------------

    /// Other ferrio nodes serving `ns`.
    fn ferrio_peers(&self, ns: &str) -> usize {
        self.remote
            .values()
            .filter(|n| n.namespaces.contains(ns))
            .count()
    }

    /// True when the namespace has members that do not mirror (Node nodes).
    fn has_foreign_members(&self, ns: &str) -> bool {
        let Some(state) = self.namespaces.get(ns) else {
            return false;
        };
        state.members > 1 + self.ferrio_peers(ns)
    }

    fn remote_rooms(&self, ns: &str) -> HashMap<String, usize> {
        let mut out: HashMap<String, usize> = HashMap::new();
        for node in self.remote.values() {
            if let Some(rooms) = node.rooms.get(ns) {
                for (room, members) in rooms {
                    if !members.is_empty() {
                        *out.entry(room.clone()).or_default() += members.len();
                    }
                }
            }
        }
        out
    }

    fn remote_members(&self, ns: &str, room: &str) -> Vec<String> {
        let mut out = Vec::new();
        for node in self.remote.values() {
            if let Some(m) = node.rooms.get(ns).and_then(|r| r.get(room)) {
                out.extend(m.iter().cloned());
            }
        }
        out
    }

    /// Forgets node `id`: its members leave their rooms; local members hear `leave-room`.
    fn drop_node(&mut self, id: &str, why: &str) {
        let Some(node) = self.remote.remove(id) else {
            return;
        };
        log::info!("cluster node left node={} reason={}", id, why);
        let mut gone = Vec::new();
        for (ns, rooms) in node.rooms {
            for (room, members) in rooms {
                gone.extend(
                    members
                        .into_iter()
                        .map(|sid| (ns.clone(), room.clone(), sid)),
                );
            }
        }
        self.announce_gone(gone);
    }

    /// Local members hear `leave-room` for sockets of another node, `(ns, room, socket)`,
    /// whose own `leave-room` never came: that node died, restarted, or we could not hear it.
    fn announce_gone(&self, gone: Vec<(String, String, String)>) {
        for (ns, room, sid) in gone {
            let Some(state) = self.namespaces.get(&ns) else {
                continue;
            };
            let handle = Namespace::from_parts(Arc::from(ns.as_str()), state.room.clone(), None);
            self.app.on_room_event(
                &handle,
                &RoomEvent::Left {
                    room: Room::from(room.as_str()),
                    id: SocketId::from(sid.as_str()),
                    cause: LeaveCause::Disconnect,
                },
            );
        }
    }

    fn on_mirror(&mut self, msg: MirrorMessage) {
        let from = msg.node().to_owned();
        if from == self.node {
            return;
        }
        let now = Instant::now();
        let known = self.remote.contains_key(&from);
        let entry = self
            .remote
            .entry(from.clone())
            .or_insert_with(|| RemoteNode {
                last_seen: now,
                seq: 0,
                namespaces: HashSet::new(),
                rooms: HashMap::new(),
                synced: false,
            });
        entry.last_seen = now;
        let mut need_sync = false;
        match msg {
            MirrorMessage::Hello { namespaces, .. } => {
                // A known node says hello again when it restarted or reconnected: its rooms stay
                // until its snapshot (sent right after) says which of its members are gone.
                entry.namespaces = namespaces.into_iter().collect();
                entry.seq = 0;
                entry.synced = false;
                log::info!("cluster node joined node={}", from);
                // Tell the newcomer what we hold.
                self.send_snapshot();
            }
            MirrorMessage::Heartbeat {
                namespaces, seq, ..
            } => {
                entry.namespaces = namespaces.into_iter().collect();
                if !known || seq != entry.seq || !entry.synced {
                    need_sync = true;
                }
            }
            MirrorMessage::Goodbye { .. } => {
                self.drop_node(&from, "goodbye");
                return;
            }
            MirrorMessage::CreateRoom { seq, .. } | MirrorMessage::DeleteRoom { seq, .. } => {
                need_sync = !known || seq != entry.seq + 1;
                entry.seq = seq;
            }
            MirrorMessage::JoinRoom {
                seq,
                nsp,
                room,
                socket,
                ..
            } => {
                need_sync = !known || seq != entry.seq + 1;
                entry.seq = seq;
                entry
                    .rooms
                    .entry(nsp)
                    .or_default()
                    .entry(room)
                    .or_default()
                    .insert(socket);
            }
            MirrorMessage::LeaveRoom {
                seq,
                nsp,
                room,
                socket,
                ..
            } => {
                need_sync = !known || seq != entry.seq + 1;
                entry.seq = seq;
                if let Some(rooms) = entry.rooms.get_mut(&nsp) {
                    if let Some(m) = rooms.get_mut(&room) {
                        m.remove(&socket);
                        if m.is_empty() {
                            rooms.remove(&room);
                        }
                    }
                }
            }
            MirrorMessage::SyncRequest { .. } => self.send_snapshot(),
            MirrorMessage::Snapshot {
                seq, namespaces, ..
            } => {
                entry.seq = seq;
                entry.synced = true;
                let rooms: HashMap<String, HashMap<String, HashSet<String>>> = namespaces
                    .into_iter()
                    .map(|n| {
                        let rooms = n
                            .rooms
                            .into_iter()
                            .map(|r| (r.room, r.members.into_iter().collect()))
                            .collect();
                        (n.nsp, rooms)
                    })
                    .collect();
                let old = std::mem::replace(&mut entry.rooms, rooms);
                let mut gone = Vec::new();
                for (ns, old_rooms) in old {
                    for (room, members) in old_rooms {
                        let now = entry.rooms.get(&ns).and_then(|r| r.get(&room));
                        for sid in members {
                            if !now.is_some_and(|m| m.contains(&sid)) {
                                gone.push((ns.clone(), room.clone(), sid));
                            }
                        }
                    }
                }
                self.announce_gone(gone);
            }
        }
        if need_sync {
            log::debug!("mirror gap from node={}: asking for a snapshot", from);
            let req = MirrorMessage::SyncRequest {
                node: self.node.clone(),
            };
            self.publish_mirror(&req);
        }
    }

    /// Publishes this node's rooms (members included) for the other ferrio nodes.
    fn send_snapshot(&mut self) {
        let namespaces = self
            .served_namespaces()
            .into_iter()
            .map(|nsp| {
                let rooms = self.local.get(&nsp).map_or_else(Vec::new, |rooms| {
                    rooms
                        .iter()
                        .map(|(room, members)| MirrorRoom {
                            room: room.clone(),
                            members: members.iter().cloned().collect(),
                        })
                        .collect()
                });
                MirrorNamespace { nsp, rooms }
            })
            .collect();
        let msg = MirrorMessage::Snapshot {
            node: self.node.clone(),
            seq: self.seq,
            namespaces,
        };
        self.publish_mirror(&msg);
    }

    fn heartbeat(&mut self, ctx: &mut Context<Self>) {
        let msg = MirrorMessage::Heartbeat {
            node: self.node.clone(),
            namespaces: self.served_namespaces(),
            interval_ms: HEARTBEAT.as_millis() as u64,
            seq: self.seq,
        };
        if self.link.is_none() {
            // Without Redis this node hears nobody: that says nothing about the others, and
            // dropping them would tell local members that every remote member left.
            return;
        }
        self.publish_mirror(&msg);
        let now = Instant::now();
        let dead: Vec<String> = self
            .remote
            .iter()
            .filter(|(_, n)| now.duration_since(n.last_seen) > NODE_TIMEOUT)
            .map(|(k, _)| k.clone())
            .collect();
        for id in dead {
            self.drop_node(&id, "no heartbeat");
        }
        self.refresh_members(ctx);
    }

    /// Refreshes `PUBSUB NUMSUB` of every request channel (the cluster's member count).
    fn refresh_members(&mut self, ctx: &mut Context<Self>) {
        let Some(link) = &self.link else { return };
        let mut conn = link.conn.clone();
        let channels: Vec<(String, String)> = self
            .namespaces
            .keys()
            .map(|ns| (ns.clone(), self.names.request(ns)))
            .collect();
        if channels.is_empty() {
            return;
        }
        let fut = async move {
            let mut cmd = redis::cmd("PUBSUB");
            cmd.arg("NUMSUB");
            for (_, ch) in &channels {
                cmd.arg(ch);
            }
            let counts: redis::RedisResult<Vec<(String, usize)>> = cmd.query_async(&mut conn).await;
            (channels, counts)
        };
        ctx.spawn(fut.into_actor(self).map(|(channels, counts), act, _| {
            if let Ok(counts) = counts {
                for ((ns, _), (_, n)) in channels.iter().zip(counts) {
                    if let Some(s) = act.namespaces.get_mut(ns) {
                        s.members = n;
                    }
                }
            }
        }));
    }

    // -- inbound -----------------------------------------------------------------------------

    fn on_broadcast(&mut self, ns: &str, payload: &[u8]) {
        let Some(state) = self.namespaces.get(ns) else {
            return;
        };
        // Redis sends every node its own broadcasts back (the pattern covers them): drop them
        // on the uid alone, before decoding the packet.
        if BroadcastMessage::sender_uid(payload) == Some(state.uid.as_str()) {
            return;
        }
        let msg = match BroadcastMessage::decode(payload) {
            Ok(m) => m,
            Err(e) => {
                self.stats.bad_messages.fetch_add(1, Ordering::Relaxed);
                log::warn!("bad broadcast ns={} error={}", ns, e);
                return;
            }
        };
        if msg.uid == state.uid || msg.packet.nsp != ns {
            return;
        }
        let EventData { data, attachments } = msg.packet.data;
        if !matches!(data.first(), Some(Value::String(_))) {
            self.stats.bad_messages.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let n = attachments.len();
        let packet = Encoded::new(
            &crate::protocol::socketio::Packet::event(ns, data, None, n),
            attachments,
        );
        state.room.do_send(Broadcast {
            target: selector_target(&msg.opts.rooms, &msg.opts.except),
            packet,
            volatile: msg.opts.flags.volatile == Some(true),
            local_origin: false,
        });
    }

    fn on_request(&mut self, ns: &str, payload: &[u8], ctx: &mut Context<Self>) {
        let Some(state) = self.namespaces.get(ns) else {
            return;
        };
        let req = match Request::decode(payload) {
            Ok(r) => r,
            Err(e) => {
                // Replies of types 8/9 never come here; anything else unknown is logged.
                self.stats.bad_messages.fetch_add(1, Ordering::Relaxed);
                log::debug!("bad request ns={} error={}", ns, e);
                return;
            }
        };
        let own = req.uid.as_deref() == Some(state.uid.as_str());
        let room = state.room.clone();
        match req.kind {
            RequestKind::RemoteJoin { opts, rooms } if !own => room.do_send(SocketsJoin {
                target: selector(&opts),
                rooms: rooms.iter().map(|r| Room::from(r.as_str())).collect(),
            }),
            // `in(R).socketsLeave(R)` empties R: that is how a ferrio `delete-room` reaches every
            // node, and its members must not hear `leave-room` presence for it.
            RequestKind::RemoteLeave { opts, rooms }
                if !own
                    && opts.except.is_empty()
                    && opts.rooms.len() == 1
                    && opts.rooms == rooms =>
            {
                room.do_send(DeleteRoom {
                    room: Room::from(rooms[0].as_str()),
                    notice: None,
                });
            }
            RequestKind::RemoteLeave { opts, rooms } if !own => room.do_send(SocketsLeave {
                target: selector(&opts),
                rooms: rooms.iter().map(|r| Room::from(r.as_str())).collect(),
            }),
            RequestKind::RemoteDisconnect { opts, close } if !own => {
                room.do_send(DisconnectSockets {
                    target: selector(&opts),
                    close,
                })
            }
            RequestKind::RemoteJoin { .. }
            | RequestKind::RemoteLeave { .. }
            | RequestKind::RemoteDisconnect { .. } => {}
            RequestKind::LegacyRemoteJoin {
                request_id,
                sid,
                room: r,
            } => self.legacy(ns, request_id, &sid, ctx, move |room, target| {
                room.do_send(SocketsJoin {
                    target,
                    rooms: vec![Room::from(r.as_str())],
                })
            }),
            RequestKind::LegacyRemoteLeave {
                request_id,
                sid,
                room: r,
            } => self.legacy(ns, request_id, &sid, ctx, move |room, target| {
                room.do_send(SocketsLeave {
                    target,
                    rooms: vec![Room::from(r.as_str())],
                })
            }),
            RequestKind::LegacyRemoteDisconnect {
                request_id,
                sid,
                close,
            } => self.legacy(ns, request_id, &sid, ctx, move |room, target| {
                room.do_send(DisconnectSockets { target, close })
            }),
            RequestKind::Sockets { request_id, rooms } => {
                if self.pending.contains_key(&request_id) {
                    return;
                }
                let target = selector_target(&rooms, &[]);
                let ns = ns.to_owned();
                let fut = room.send(FetchSockets { target });
                ctx.spawn(fut.into_actor(self).map(move |res, act, _| {
                    let sockets = res
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(info, _)| info.id.to_string())
                        .collect();
                    act.publish_response(
                        &ns,
                        &Response::SocketIds {
                            request_id,
                            sockets,
                        },
                    );
                }));
            }
            RequestKind::AllRooms { request_id } => {
                if self.pending.contains_key(&request_id) {
                    return;
                }
                let ns = ns.to_owned();
                let fut = room.send(FetchSockets {
                    target: Target::default(),
                });
                ctx.spawn(fut.into_actor(self).map(move |res, act, _| {
                    let mut set: Vec<String> = Vec::new();
                    let mut seen = HashSet::new();
                    for (_, rooms) in res.unwrap_or_default() {
                        for r in rooms {
                            if seen.insert(r.clone()) {
                                set.push(r.to_string());
                            }
                        }
                    }
                    act.publish_response(
                        &ns,
                        &Response::AllRooms {
                            request_id,
                            rooms: set,
                        },
                    );
                }));
            }
            RequestKind::RemoteFetch { request_id, opts } => {
                if self.pending.contains_key(&request_id) {
                    return;
                }
                let ns = ns.to_owned();
                let fut = room.send(FetchSockets {
                    target: selector(&opts),
                });
                ctx.spawn(fut.into_actor(self).map(move |res, act, _| {
                    let sockets = res
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(info, rooms)| remote_socket(&info, &rooms))
                        .collect();
                    act.publish_response(
                        &ns,
                        &Response::RemoteFetch {
                            request_id,
                            sockets,
                        },
                    );
                }));
            }
            RequestKind::ServerSideEmit { request_id, data } => {
                if own {
                    return;
                }
                let handle = Namespace::from_parts(
                    Arc::from(ns),
                    room,
                    Some(Cluster {
                        addr: ctx.address(),
                        ready: self.ready.clone(),
                    }),
                );
                let answer = self.app.on_server_side_emit(&handle, data);
                if let Some(request_id) = request_id {
                    self.publish_response(
                        ns,
                        &Response::ServerSideEmitAck {
                            request_id,
                            data: answer.unwrap_or(Value::Null),
                        },
                    );
                }
            }
            RequestKind::Broadcast {
                request_id,
                packet,
                opts,
            } => {
                if own || self.pending.contains_key(&request_id) {
                    return;
                }
                self.broadcast_with_ack(ns, request_id, packet, opts, ctx);
            }
        }
    }

    /// A pre-8 single-socket request: applied and acknowledged by the socket's owner only.
    fn legacy(
        &mut self,
        ns: &str,
        request_id: String,
        sid: &str,
        ctx: &mut Context<Self>,
        apply: impl FnOnce(&Addr<RoomActor>, Target) + 'static,
    ) {
        let Some(state) = self.namespaces.get(ns) else {
            return;
        };
        let room = state.room.clone();
        let target = selector_target(&[sid.to_owned()], &[]);
        let ns = ns.to_owned();
        let fut = room.send(FetchSockets {
            target: target.clone(),
        });
        ctx.spawn(fut.into_actor(self).map(move |res, act, _| {
            if res.map(|v| v.is_empty()).unwrap_or(true) {
                return;
            }
            apply(&room, target);
            act.publish_response(&ns, &Response::Acknowledged { request_id });
        }));
    }

    /// Request 7: deliver with acks, reply the client count, then each ack.
    fn broadcast_with_ack(
        &mut self,
        ns: &str,
        request_id: String,
        packet: BroadcastPacket,
        opts: BroadcastOptions,
        ctx: &mut Context<Self>,
    ) {
        let Some(state) = self.namespaces.get(ns) else {
            return;
        };
        let timeout = opts
            .flags
            .timeout
            .map_or(self.request_timeout, Duration::from_millis);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let fut = state.room.send(BroadcastWithAck {
            target: selector_target(&opts.rooms, &opts.except),
            data: packet.data.data,
            bins: packet.data.attachments,
            timeout,
            acks: tx,
        });
        let ns = ns.to_owned();
        let addr = ctx.address();
        ctx.spawn(fut.into_actor(self).map(move |count, act, _| {
            let count = count.unwrap_or(0);
            act.publish_response(
                &ns,
                &Response::BroadcastClientCount {
                    request_id: request_id.clone(),
                    client_count: count as u64,
                },
            );
            actix::spawn(async move {
                let deadline = tokio::time::Instant::now() + timeout;
                for _ in 0..count {
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(Ok(ack))) => addr.do_send(PublishAck {
                            ns: ns.clone(),
                            request_id: request_id.clone(),
                            ack,
                        }),
                        Ok(Some(Err(_))) => {}
                        _ => break,
                    }
                }
            });
        }));
    }

    fn on_response(&mut self, payload: &[u8], ctx: &mut Context<Self>) {
        let resp = match Response::decode(payload) {
            Ok(r) => r,
            Err(e) => {
                self.stats.bad_messages.fetch_add(1, Ordering::Relaxed);
                log::debug!("bad response error={}", e);
                return;
            }
        };
        let id = resp.request_id().to_owned();
        let Some(p) = self.pending.get_mut(&id) else {
            return;
        };
        p.got += 1;
        match resp {
            Response::RemoteFetch { sockets, .. } => p.sockets.extend(sockets),
            Response::AllRooms { rooms, .. } => p.rooms.extend(rooms),
            Response::ServerSideEmitAck { data, .. } => p.acks.push(data),
            _ => {}
        }
        if p.got >= p.expected {
            self.finish(&id, ctx, false);
        }
    }

    fn finish(&mut self, id: &str, ctx: &mut Context<Self>, timed_out: bool) {
        let Some(p) = self.pending.remove(id) else {
            return;
        };
        if !timed_out {
            ctx.cancel_future(p.timer);
        }
        match p.reply {
            PendingReply::Fetch(tx) => {
                let _ = tx.send(p.sockets);
            }
            PendingReply::AllRooms(tx) => {
                let _ = tx.send(p.rooms);
            }
            PendingReply::ServerSideEmit(tx) => {
                let _ = tx.send(if timed_out { Err(p.acks) } else { Ok(p.acks) });
            }
        }
        if timed_out {
            log::debug!("cluster request timed out request={}", id);
        }
    }

    /// Publishes a request and registers it; `expected` replies complete it.
    fn start_request(
        &mut self,
        ns: &str,
        kind_for: impl FnOnce(String) -> RequestKind,
        expected: usize,
        reply: PendingReply,
        ctx: &mut Context<Self>,
    ) {
        let request_id = engineio::generate_id();
        let uid = self.namespaces.get(ns).map(|s| s.uid.clone());
        if self.pending.len() >= MAX_PENDING || self.link.is_none() || expected == 0 {
            let p = Pending {
                expected,
                got: 0,
                sockets: vec![],
                rooms: vec![],
                acks: vec![],
                reply,
                timer: ctx.run_later(Duration::ZERO, |_, _| {}),
            };
            self.pending.insert(request_id.clone(), p);
            self.finish(&request_id, ctx, expected != 0);
            return;
        }
        let req = Request {
            uid,
            kind: kind_for(request_id.clone()),
        };
        let rid = request_id.clone();
        let timer = ctx.run_later(self.request_timeout, move |act, ctx| {
            act.finish(&rid, ctx, true);
        });
        self.pending.insert(
            request_id.clone(),
            Pending {
                expected,
                got: 0,
                sockets: vec![],
                rooms: vec![],
                acks: vec![],
                reply,
                timer,
            },
        );
        if !self.publish_request(ns, &req) {
            self.finish(&request_id, ctx, true);
        }
    }

    fn add_namespace(&mut self, ns: String, room: Addr<RoomActor>) {
        if self.namespaces.contains_key(&ns) {
            return;
        }
        let uid = format!("f{}", &engineio::generate_id()[..11]);
        self.namespaces.insert(
            ns.clone(),
            NsState {
                uid,
                room,
                members: 1,
            },
        );
        self.subscribe_ns(&ns);
    }
}

/// The target of a classic selector.
fn selector(opts: &SocketSelector) -> Target {
    selector_target(&opts.rooms, &opts.except)
}

fn selector_target(rooms: &[String], except: &[String]) -> Target {
    Target {
        rooms: rooms.iter().map(|r| Room::from(r.as_str())).collect(),
        except: except.iter().map(|r| Room::from(r.as_str())).collect(),
        rooms_only: false,
    }
}

/// A local socket as `fetchSockets` reports it.
fn remote_socket(info: &SocketInfo, rooms: &[Room]) -> RemoteSocket {
    let hs = &info.handshake;
    let map = |pairs: &[(String, String)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect()
    };
    RemoteSocket {
        id: info.id.to_string(),
        handshake: cluster::Handshake {
            headers: map(&hs.headers),
            time: cluster::js_date_string(hs.issued as i64),
            address: hs.address.clone(),
            xdomain: hs.xdomain,
            secure: hs.secure,
            issued: hs.issued,
            url: hs.url.clone(),
            query: map(&hs.query),
            auth: match &info.auth {
                Value::Object(m) => m.clone(),
                _ => Default::default(),
            },
            other: Default::default(),
        },
        rooms: rooms.iter().map(|r| r.to_string()).collect(),
        data: json!({}),
    }
}

impl Actor for Bridge {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.mailbox);
        self.ready.store(false, Ordering::SeqCst);
        ctx.run_interval(HEARTBEAT, |act, ctx| act.heartbeat(ctx));
        let url = self.url.clone();
        let addr = ctx.address();
        let cap = self.mailbox;
        actix::spawn(connection_loop(url, addr, cap));
    }
}

/// Connects, subscribes, pumps; reconnects with backoff. Runs for the life of the bridge.
async fn connection_loop(url: String, bridge: Addr<Bridge>, cap: usize) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match connect(&url).await {
            Ok((conn, pubsub)) => {
                backoff = Duration::from_millis(100);
                let (sink, mut stream) = pubsub.split();
                let (out_tx, out_rx) = mpsc::channel(cap.max(16));
                let publisher = actix::spawn(publisher(conn.clone(), out_rx));
                if bridge
                    .send(RedisUp {
                        link_conn: conn,
                        sink,
                        out: out_tx,
                    })
                    .await
                    .is_err()
                {
                    return;
                }
                while let Some(msg) = stream.next().await {
                    let inbound = RedisInbound {
                        channel: msg.get_channel_name().to_owned(),
                        pattern: if msg.from_pattern() {
                            msg.get_pattern::<String>().ok()
                        } else {
                            None
                        },
                        payload: Bytes::copy_from_slice(msg.get_payload_bytes()),
                    };
                    if bridge.send(inbound).await.is_err() {
                        return;
                    }
                }
                publisher.abort();
                if bridge.send(RedisDown).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                log::warn!(
                    "redis connect failed url={} error={} retry_in={:?}",
                    url,
                    e,
                    backoff
                );
            }
        }
        actix_rt::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

async fn connect(url: &str) -> redis::RedisResult<(MultiplexedConnection, redis::aio::PubSub)> {
    use redis::IntoConnectionInfo;
    // TCP_NODELAY (redis-rs leaves Nagle on): a small write issued while another is unanswered
    // on the multiplexed connection (a heartbeat's NUMSUB next to a PUBLISH) must not wait
    // for the ACK of the first.
    let info = url.into_connection_info()?;
    let tcp = info.tcp_settings().clone().set_nodelay(true);
    let client = redis::Client::open(info.set_tcp_settings(tcp))?;
    let conn = client.get_multiplexed_async_connection().await?;
    let pubsub = client.get_async_pubsub().await?;
    Ok((conn, pubsub))
}

/// Sends queued publishes, pipelined in batches, in order.
async fn publisher(mut conn: MultiplexedConnection, mut rx: mpsc::Receiver<(String, Vec<u8>)>) {
    while let Some(first) = rx.recv().await {
        let mut pipe = redis::pipe();
        pipe.publish(first.0, first.1).ignore();
        let mut n = 1;
        while n < 256 {
            match rx.try_recv() {
                Ok((ch, p)) => {
                    pipe.publish(ch, p).ignore();
                    n += 1;
                }
                Err(_) => break,
            }
        }
        if let Err(e) = pipe.query_async::<()>(&mut conn).await {
            log::warn!("redis publish failed: {e} (lost {n} messages)");
            return;
        }
    }
}

// -- messages ---------------------------------------------------------------------------------

/// The connection task is up: here are the connections of this epoch.
#[derive(Message)]
#[rtype(result = "()")]
struct RedisUp {
    link_conn: MultiplexedConnection,
    sink: PubSubSink,
    out: mpsc::Sender<(String, Vec<u8>)>,
}

/// The connection of this epoch is gone.
#[derive(Message)]
#[rtype(result = "()")]
struct RedisDown;

/// A message from Redis.
#[derive(Message)]
#[rtype(result = "()")]
struct RedisInbound {
    channel: String,
    pattern: Option<String>,
    payload: Bytes,
}

/// One client ack of a request-7 broadcast, to publish.
#[derive(Message)]
#[rtype(result = "()")]
struct PublishAck {
    ns: String,
    request_id: String,
    ack: AckData,
}

impl Handler<RedisUp> for Bridge {
    type Result = ();
    fn handle(&mut self, msg: RedisUp, ctx: &mut Context<Self>) {
        log::info!("redis connected node={}", self.node);
        // Silence while we were cut off does not count against the other nodes: each gets a
        // full NODE_TIMEOUT from now to be heard again.
        let now = Instant::now();
        for node in self.remote.values_mut() {
            node.last_seen = now;
        }
        self.link = Some(Link {
            conn: msg.link_conn,
            sink: msg.sink.clone(),
            out: msg.out,
        });
        self.epoch += 1;
        let epoch = self.epoch;
        // Subscribe first, then say hello and turn ready: the snapshots that answer our hello
        // must find us listening, and a ready node must receive what the cluster sends.
        let mut sink = msg.sink;
        let mut channels = vec![self.names.mirror()];
        let mut patterns = Vec::new();
        for (ns, state) in &self.namespaces {
            patterns.push(self.names.broadcast_pattern(ns));
            channels.push(self.names.request(ns));
            channels.push(self.names.response(ns));
            channels.push(self.names.response_for(ns, &state.uid));
        }
        let subscribed = async move {
            let work = async {
                sink.subscribe(&channels).await?;
                if !patterns.is_empty() {
                    sink.psubscribe(&patterns).await?;
                }
                Ok::<(), redis::RedisError>(())
            };
            match tokio::time::timeout(Duration::from_secs(5), work).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => log::warn!("redis subscribe failed: {e}"),
                Err(_) => log::warn!("redis subscribe timed out"),
            }
        };
        ctx.spawn(subscribed.into_actor(self).map(move |(), act, ctx| {
            if act.epoch == epoch && act.link.is_some() {
                act.announce_up(ctx);
            }
        }));
    }
}

impl Bridge {
    /// Subscribed after (re)connecting: say hello, exchange snapshots, turn ready.
    fn announce_up(&mut self, ctx: &mut Context<Self>) {
        let hello = MirrorMessage::Hello {
            node: self.node.clone(),
            namespaces: self.served_namespaces(),
            interval_ms: HEARTBEAT.as_millis() as u64,
        };
        self.publish_mirror(&hello);
        // Our rooms may have changed while we were away: tell everyone, and ask theirs.
        self.send_snapshot();
        let sync = MirrorMessage::SyncRequest {
            node: self.node.clone(),
        };
        self.publish_mirror(&sync);
        self.refresh_members(ctx);
        self.ready.store(true, Ordering::SeqCst);
    }
}

impl Handler<RedisDown> for Bridge {
    type Result = ();
    fn handle(&mut self, _: RedisDown, _: &mut Context<Self>) {
        log::warn!(
            "redis connection lost node={}: local delivery only until it returns",
            self.node
        );
        self.link = None;
        self.ready.store(false, Ordering::SeqCst);
    }
}

impl Handler<RedisInbound> for Bridge {
    type Result = ();
    fn handle(&mut self, msg: RedisInbound, ctx: &mut Context<Self>) {
        if let Some(pattern) = &msg.pattern {
            let ns = self
                .namespaces
                .keys()
                .find(|ns| &self.names.broadcast_pattern(ns) == pattern)
                .cloned();
            if let Some(ns) = ns {
                if self.names.parse_in_namespace(&ns, &msg.channel).is_some() {
                    self.on_broadcast(&ns, &msg.payload);
                }
            }
            return;
        }
        match self.names.parse(&msg.channel) {
            Ok(Channel::Mirror) => match MirrorMessage::decode(&msg.payload) {
                Ok(m) => self.on_mirror(m),
                Err(e) => {
                    self.stats.bad_messages.fetch_add(1, Ordering::Relaxed);
                    log::warn!("bad mirror message error={e}");
                }
            },
            Ok(Channel::Request { nsp }) => self.on_request(&nsp, &msg.payload, ctx),
            Ok(Channel::Response { .. }) => self.on_response(&msg.payload, ctx),
            Ok(Channel::Broadcast { .. }) | Err(_) => {}
        }
    }
}

impl Handler<PublishAck> for Bridge {
    type Result = ();
    fn handle(&mut self, msg: PublishAck, _: &mut Context<Self>) {
        let AckData { mut args, bins } = msg.ack;
        let value = if args.is_empty() {
            Value::Null
        } else {
            args.swap_remove(0)
        };
        self.publish_response(
            &msg.ns,
            &Response::BroadcastAck {
                request_id: msg.request_id,
                packet: Payload {
                    value,
                    attachments: bins,
                },
            },
        );
    }
}

/// A namespace (its room actor) exists on this node: serve it in the cluster.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AddNamespace {
    pub ns: String,
    pub room: Addr<RoomActor>,
}

impl Handler<AddNamespace> for Bridge {
    type Result = ();
    fn handle(&mut self, msg: AddNamespace, _: &mut Context<Self>) {
        self.add_namespace(msg.ns, msg.room);
    }
}

impl Handler<RoomLifecycle> for Bridge {
    type Result = ();
    fn handle(&mut self, msg: RoomLifecycle, _: &mut Context<Self>) {
        self.seq += 1;
        let (node, seq, nsp) = (self.node.clone(), self.seq, msg.ns.to_string());
        let rooms = self.local.entry(nsp.clone()).or_default();
        match &msg.event {
            RoomEvent::Joined { room, id } => {
                rooms
                    .entry(room.to_string())
                    .or_default()
                    .insert(id.to_string());
            }
            RoomEvent::Left { room, id, .. } => {
                if let Some(m) = rooms.get_mut(room.as_str()) {
                    m.remove(id.as_str());
                    if m.is_empty() {
                        rooms.remove(room.as_str());
                    }
                }
            }
            RoomEvent::Created { .. } | RoomEvent::Deleted { .. } => {}
        }
        let m = match msg.event {
            RoomEvent::Created { room } => MirrorMessage::CreateRoom {
                node,
                seq,
                nsp,
                room: room.to_string(),
            },
            RoomEvent::Deleted { room } => MirrorMessage::DeleteRoom {
                node,
                seq,
                nsp,
                room: room.to_string(),
            },
            RoomEvent::Joined { room, id } => MirrorMessage::JoinRoom {
                node,
                seq,
                nsp,
                room: room.to_string(),
                socket: id.to_string(),
            },
            RoomEvent::Left { room, id, .. } => MirrorMessage::LeaveRoom {
                node,
                seq,
                nsp,
                room: room.to_string(),
                socket: id.to_string(),
            },
        };
        if self.link.is_some() {
            self.publish_mirror(&m);
        }
    }
}

/// A local broadcast to publish to the other nodes.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Publish {
    pub ns: Arc<str>,
    pub target: Target,
    /// `[event, ...args]`, binary values as placeholders into `bins`.
    pub data: Vec<Value>,
    pub bins: Vec<Bytes>,
    pub volatile: bool,
}

impl Handler<Publish> for Bridge {
    type Result = ();
    fn handle(&mut self, msg: Publish, _: &mut Context<Self>) {
        let Some(state) = self.namespaces.get(&*msg.ns) else {
            return;
        };
        let opts = BroadcastOptions {
            rooms: msg.target.rooms.iter().map(|r| r.to_string()).collect(),
            except: msg.target.except.iter().map(|r| r.to_string()).collect(),
            flags: BroadcastFlags {
                volatile: msg.volatile.then_some(true),
                ..Default::default()
            },
        };
        let bm = BroadcastMessage {
            uid: state.uid.clone(),
            packet: BroadcastPacket::event(
                msg.ns.to_string(),
                EventData {
                    data: msg.data,
                    attachments: msg.bins,
                },
            ),
            opts,
        };
        match bm.encode() {
            Ok(bytes) => {
                let ch = bm.channel(&self.names);
                self.publish(ch, bytes);
            }
            Err(e) => log::error!("broadcast encode failed: {e}"),
        }
    }
}

/// Room names and sizes, cluster-wide.
#[derive(Message)]
#[rtype(result = "Vec<(Room, usize)>")]
pub struct ClusterRooms {
    pub ns: String,
}

/// Members of a room, cluster-wide.
#[derive(Message)]
#[rtype(result = "Vec<SocketId>")]
pub struct ClusterMembers {
    pub ns: String,
    pub room: String,
}

/// Fetch sockets on the other nodes (`fetchSockets` as a requester).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ClusterFetch {
    pub ns: String,
    pub target: Target,
    pub reply: oneshot::Sender<Vec<RemoteSocket>>,
}

/// Room names on the other nodes (`allRooms` as a requester).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ClusterAllRooms {
    pub ns: String,
    pub reply: oneshot::Sender<Vec<String>>,
}

/// `serverSideEmit` to the other nodes, with acks when `reply` is given.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ClusterServerSideEmit {
    pub ns: String,
    pub data: Vec<Value>,
    pub reply: Option<oneshot::Sender<Result<Vec<Value>, Vec<Value>>>>,
}

/// `socketsJoin` / `socketsLeave` / `disconnectSockets` on the other nodes.
#[derive(Message)]
#[rtype(result = "()")]
pub enum ClusterRemote {
    Join {
        ns: String,
        target: Target,
        rooms: Vec<Room>,
    },
    Leave {
        ns: String,
        target: Target,
        rooms: Vec<Room>,
    },
    Disconnect {
        ns: String,
        target: Target,
        close: bool,
    },
}

/// Says goodbye to the other nodes (clean stop).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Goodbye;

impl Handler<Goodbye> for Bridge {
    type Result = ();
    fn handle(&mut self, _: Goodbye, _: &mut Context<Self>) {
        let m = MirrorMessage::Goodbye {
            node: self.node.clone(),
        };
        self.publish_mirror(&m);
    }
}

fn to_selector(t: &Target) -> SocketSelector {
    SocketSelector {
        rooms: t.rooms.iter().map(|r| r.to_string()).collect(),
        except: t.except.iter().map(|r| r.to_string()).collect(),
    }
}

impl Handler<ClusterRemote> for Bridge {
    type Result = ();
    fn handle(&mut self, msg: ClusterRemote, _: &mut Context<Self>) {
        let (ns, kind) = match msg {
            ClusterRemote::Join { ns, target, rooms } => (
                ns,
                RequestKind::RemoteJoin {
                    opts: to_selector(&target),
                    rooms: rooms.iter().map(|r| r.to_string()).collect(),
                },
            ),
            ClusterRemote::Leave { ns, target, rooms } => (
                ns,
                RequestKind::RemoteLeave {
                    opts: to_selector(&target),
                    rooms: rooms.iter().map(|r| r.to_string()).collect(),
                },
            ),
            ClusterRemote::Disconnect { ns, target, close } => (
                ns,
                RequestKind::RemoteDisconnect {
                    opts: to_selector(&target),
                    close,
                },
            ),
        };
        let uid = self.namespaces.get(&ns).map(|s| s.uid.clone());
        self.publish_request(&ns, &Request { uid, kind });
    }
}

impl Handler<ClusterFetch> for Bridge {
    type Result = ();
    fn handle(&mut self, msg: ClusterFetch, ctx: &mut Context<Self>) {
        let expected = self
            .namespaces
            .get(&msg.ns)
            .map_or(0, |s| s.members.saturating_sub(1));
        let opts = to_selector(&msg.target);
        self.start_request(
            &msg.ns,
            |request_id| RequestKind::RemoteFetch { request_id, opts },
            expected,
            PendingReply::Fetch(msg.reply),
            ctx,
        );
    }
}

impl Handler<ClusterAllRooms> for Bridge {
    type Result = ();
    fn handle(&mut self, msg: ClusterAllRooms, ctx: &mut Context<Self>) {
        let expected = self
            .namespaces
            .get(&msg.ns)
            .map_or(0, |s| s.members.saturating_sub(1));
        self.start_request(
            &msg.ns,
            |request_id| RequestKind::AllRooms { request_id },
            expected,
            PendingReply::AllRooms(msg.reply),
            ctx,
        );
    }
}

impl Handler<ClusterServerSideEmit> for Bridge {
    type Result = ();
    fn handle(&mut self, msg: ClusterServerSideEmit, ctx: &mut Context<Self>) {
        let data = msg.data;
        match msg.reply {
            None => {
                let uid = self.namespaces.get(&msg.ns).map(|s| s.uid.clone());
                let req = Request {
                    uid,
                    kind: RequestKind::ServerSideEmit {
                        request_id: None,
                        data,
                    },
                };
                self.publish_request(&msg.ns, &req);
            }
            Some(reply) => {
                let expected = self
                    .namespaces
                    .get(&msg.ns)
                    .map_or(0, |s| s.members.saturating_sub(1));
                self.start_request(
                    &msg.ns,
                    |request_id| RequestKind::ServerSideEmit {
                        request_id: Some(request_id),
                        data,
                    },
                    expected,
                    PendingReply::ServerSideEmit(reply),
                    ctx,
                );
            }
        }
    }
}

impl Handler<ClusterRooms> for Bridge {
    type Result = ResponseActFuture<Self, Vec<(Room, usize)>>;
    fn handle(&mut self, msg: ClusterRooms, ctx: &mut Context<Self>) -> Self::Result {
        let Some(state) = self.namespaces.get(&msg.ns) else {
            return Box::pin(fut::ready(Vec::new()));
        };
        let room = state.room.clone();
        if self.has_foreign_members(&msg.ns) {
            // Node members do not mirror: ask everyone for their sockets.
            let (tx, rx) = oneshot::channel();
            self.handle(
                ClusterFetch {
                    ns: msg.ns.clone(),
                    target: Target::default(),
                    reply: tx,
                },
                ctx,
            );
            let fut = async move {
                let local = room
                    .send(FetchSockets {
                        target: Target::default(),
                    })
                    .await
                    .unwrap_or_default();
                let remote = rx.await.unwrap_or_default();
                let mut sizes: HashMap<String, usize> = HashMap::new();
                for (info, rooms) in local {
                    for r in rooms {
                        if r.as_str() != info.id.as_str() {
                            *sizes.entry(r.to_string()).or_default() += 1;
                        }
                    }
                }
                for s in remote {
                    for r in s.rooms {
                        if r != s.id {
                            *sizes.entry(r).or_default() += 1;
                        }
                    }
                }
                sorted_sizes(sizes)
            };
            return Box::pin(fut.into_actor(self));
        }
        let remote = self.remote_rooms(&msg.ns);
        let fut = async move {
            let mut sizes = remote;
            for (r, n) in room.send(ListRooms).await.unwrap_or_default() {
                *sizes.entry(r.to_string()).or_default() += n;
            }
            sorted_sizes(sizes)
        };
        Box::pin(fut.into_actor(self))
    }
}

fn sorted_sizes(sizes: HashMap<String, usize>) -> Vec<(Room, usize)> {
    let mut v: Vec<(Room, usize)> = sizes.into_iter().map(|(r, n)| (Room::from(r), n)).collect();
    v.sort();
    v
}

impl Handler<ClusterMembers> for Bridge {
    type Result = ResponseActFuture<Self, Vec<SocketId>>;
    fn handle(&mut self, msg: ClusterMembers, ctx: &mut Context<Self>) -> Self::Result {
        let Some(state) = self.namespaces.get(&msg.ns) else {
            return Box::pin(fut::ready(Vec::new()));
        };
        let room = state.room.clone();
        let room_name = msg.room.clone();
        if self.has_foreign_members(&msg.ns) {
            let (tx, rx) = oneshot::channel();
            self.handle(
                ClusterFetch {
                    ns: msg.ns.clone(),
                    target: Target {
                        rooms: vec![Room::from(msg.room.as_str())],
                        except: vec![],
                        rooms_only: true,
                    },
                    reply: tx,
                },
                ctx,
            );
            let fut = async move {
                let mut ids: Vec<SocketId> = room
                    .send(RoomMembers {
                        room: Room::from(room_name.as_str()),
                    })
                    .await
                    .unwrap_or_default();
                for s in rx.await.unwrap_or_default() {
                    if s.id != room_name {
                        ids.push(SocketId::from(s.id));
                    }
                }
                ids.sort();
                ids.dedup();
                ids
            };
            return Box::pin(fut.into_actor(self));
        }
        let remote = self.remote_members(&msg.ns, &msg.room);
        let fut = async move {
            let mut ids: Vec<SocketId> = room
                .send(RoomMembers {
                    room: Room::from(room_name.as_str()),
                })
                .await
                .unwrap_or_default();
            ids.extend(remote.into_iter().map(SocketId::from));
            ids.sort();
            ids.dedup();
            ids
        };
        Box::pin(fut.into_actor(self))
    }
}
