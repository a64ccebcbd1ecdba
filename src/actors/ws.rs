//! The WebSocket transport: the only module that knows how WebSocket frames travel.
//!
//! The HTTP layer hands over the raw TCP stream of an upgrade request ([`accept`]); from then on
//! the connection belongs to this module, and the HTTP layer's buffers are gone. Each WebSocket
//! has two tasks over the two halves of the stream:
//! - a **reader** that waits for readability without holding a buffer, reads what is there,
//!   decodes frames and forwards each to its session (the socket actor): straight into its
//!   mailbox while there is room, with `send().await` when it is full, so a session that cannot
//!   keep up stops the reading of its own socket and nothing else;
//! - a **writer** that takes frames from a bounded channel ([`WsHandle`]) and encodes everything
//!   queued into one buffer, so several frames for one connection become one `write()`. When
//!   the client reads slowly the write waits, the channel fills, `try_send` fails, and the
//!   session applies its slow-consumer policy (frames wait in its bounded queue; past
//!   `FERRIO_SOCKET_BUFFER`, volatile packets are dropped and anything else closes the session).
//!   Aborting stops both tasks at once, even in the middle of a write to a client that never
//!   reads.
//!
//! An idle connection holds no read or write buffer: only the two tasks, the channel and the
//! socket.
//!
//! Closing: the side that closes sends a close frame, the writer then shuts its half down (FIN)
//! and the reader keeps reading (and discarding) until the client closes too, at most
//! [`CLOSE_LINGER`], so unread input never turns the close into a reset that would lose the close
//! frame.
//!
//! Limits: a frame, or a fragmented message, larger than `FERRIO_MAX_PAYLOAD` closes the
//! connection with code 1009 before anything reaches the session.
//!
//! History: this replaced `actix-web-actors` (deprecated), whose `WebsocketContext` could only
//! be stopped from inside the actor, so a connection whose client never reads could not be cut
//! off. Then `actix-ws`, and a response body streamed through actix-http, each kept actix-http's
//! two 8 KiB connection buffers (or a read chunk) alive for the life of an idle WebSocket.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::dev::SendError;
use actix::prelude::*;
use actix_http::header;
use actix_http::ws::{
    hash_key, verify_handshake, CloseCode, CloseReason, Codec, Frame as WsFrame, HandshakeError,
    Item, Message as WsMessage, ProtocolError,
};
use actix_http::RequestHead;
use bytes::{Buf, Bytes, BytesMut};
use bytestring::ByteString;
use parking_lot::Mutex;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_util::codec::{Decoder, Encoder};

use super::messages::{Frame, WsClosed, WsInbound, WsOpened};
use super::socket::Session;

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// Frames queued for one WebSocket before its session sees it as full.
const WS_QUEUE: usize = 32;

/// Frames encoded into one write at most.
const COALESCE: usize = 64;

/// The largest single read (into a buffer shared by the thread's connections).
const READ_CHUNK: usize = 64 * 1024;

/// How long a closing connection waits for the client's side of the close.
pub const CLOSE_LINGER: Duration = Duration::from_secs(2);

thread_local! {
    /// Reads land here first; each connection keeps only the bytes it got, exactly sized.
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; READ_CHUNK]);
}

/// What a session (or the reader) asks of the writer.
#[derive(Debug)]
enum WsOut {
    Frame(Frame),
    /// Answer a client's ping.
    Pong(Bytes),
    /// Close after the frames queued before it, with this code.
    Close(CloseCode),
}

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Open,
    /// The writer is done (close frame sent, or it failed); the reader may let go.
    WriterDone,
    /// Drop everything now.
    Abort,
}

/// What the session's handles, the reader and the writer of one connection share.
#[derive(Debug)]
struct Conn {
    state: Mutex<ConnState>,
    /// Something was queued, the handles are gone, or the phase changed.
    wake_writer: Notify,
    /// The phase changed (every waiter is woken: the reader, and the writer when closing).
    phase_changed: Notify,
    /// The queue has room again.
    room: Notify,
}

#[derive(Debug)]
struct ConnState {
    queue: VecDeque<WsOut>,
    phase: Phase,
    /// A close frame is queued: nothing may follow it.
    closing: bool,
    /// Live [`WsHandle`]s; at zero the writer closes.
    handles: usize,
    /// The last write found the socket's send buffer full: the client reads slower than we
    /// write (as opposed to a server that is merely busy).
    stalled: bool,
}

impl Conn {
    fn phase(&self) -> Phase {
        self.state.lock().phase
    }

    fn set_phase(&self, to: Phase) {
        {
            let mut st = self.state.lock();
            if st.phase == Phase::Abort || (to == Phase::WriterDone && st.phase != Phase::Open) {
                return;
            }
            st.phase = to;
        }
        self.wake_writer.notify_one();
        self.phase_changed.notify_waiters();
        self.room.notify_waiters();
    }

    fn abort(&self) {
        self.set_phase(Phase::Abort);
    }

    /// Queues `out` unless the queue is full, closing, or the connection is done.
    fn push(&self, out: WsOut, bounded: bool) -> Result<(), (WsOut, WsSendError)> {
        {
            let mut st = self.state.lock();
            if st.closing || st.phase != Phase::Open {
                return Err((out, WsSendError::Closed));
            }
            if bounded && st.queue.len() >= WS_QUEUE {
                return Err((out, WsSendError::Full));
            }
            st.closing = matches!(out, WsOut::Close(_));
            st.queue.push_back(out);
        }
        self.wake_writer.notify_one();
        Ok(())
    }

    /// Resolves once the phase satisfies `done`.
    async fn sees(&self, done: impl Fn(Phase) -> bool) {
        loop {
            let changed = self.phase_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if done(self.phase()) {
                return;
            }
            changed.await;
        }
    }
}

/// Why a frame could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsSendError {
    /// The client reads slower than we write.
    Full,
    /// The WebSocket is gone.
    Closed,
}

/// The session's end of one WebSocket. Cheap to clone; when the last one is dropped without a
/// close, the connection closes with 1001 (going away).
#[derive(Debug)]
pub struct WsHandle {
    id: u64,
    conn: Arc<Conn>,
}

impl Clone for WsHandle {
    fn clone(&self) -> Self {
        self.conn.state.lock().handles += 1;
        WsHandle {
            id: self.id,
            conn: self.conn.clone(),
        }
    }
}

impl Drop for WsHandle {
    fn drop(&mut self) {
        let last = {
            let mut st = self.conn.state.lock();
            st.handles -= 1;
            st.handles == 0
        };
        if last {
            self.conn.wake_writer.notify_one();
        }
    }
}

impl WsHandle {
    /// Tells this connection apart from an older or newer one of the same session.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Queues a frame without waiting; gives it back when it cannot be queued.
    pub fn try_send(&self, frame: Frame) -> Result<(), (Frame, WsSendError)> {
        match self.conn.push(WsOut::Frame(frame), true) {
            Ok(()) => Ok(()),
            Err((WsOut::Frame(f), e)) => Err((f, e)),
            // Only a frame was pushed: nothing else can come back.
            Err((_, e)) => Err((Frame::Text(ByteString::new()), e)),
        }
    }

    /// Whether the client is not keeping up: the last write found its socket full.
    pub fn stalled(&self) -> bool {
        self.conn.state.lock().stalled
    }

    /// Resolves once the queue has room again (or the WebSocket is gone).
    pub fn ready(&self) -> impl std::future::Future<Output = ()> + 'static {
        let conn = self.conn.clone();
        async move {
            loop {
                let room = conn.room.notified();
                tokio::pin!(room);
                room.as_mut().enable();
                {
                    let st = conn.state.lock();
                    if st.queue.len() < WS_QUEUE || st.closing || st.phase != Phase::Open {
                        return;
                    }
                }
                room.await;
            }
        }
    }

    /// Closes after the queued frames; a full queue (a slow reader) is cut off at once.
    pub fn close(&self) {
        if self
            .conn
            .push(WsOut::Close(CloseCode::Normal), true)
            .is_err()
        {
            self.abort();
        }
    }

    /// Drops the connection now, queued frames included.
    pub fn abort(&self) {
        self.conn.abort();
    }
}

/// Checks the WebSocket headers of an upgrade request.
pub fn verify(head: &RequestHead) -> Result<(), HandshakeError> {
    verify_handshake(head)
}

/// The `101 Switching Protocols` answer to a verified upgrade request.
fn switching_protocols(head: &RequestHead) -> BytesMut {
    let key = head
        .headers()
        .get(header::SEC_WEBSOCKET_KEY)
        .map(|k| hash_key(k.as_bytes()))
        .unwrap_or_default();
    let mut out = BytesMut::with_capacity(160);
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\
          sec-websocket-accept: ",
    );
    out.extend_from_slice(&key);
    out.extend_from_slice(b"\r\n\r\n");
    out
}

/// Takes over an upgraded connection for `session`: answers `101`, then runs the reader and
/// the writer. `early` is what the client sent after its request head (frames may follow the
/// handshake without waiting for the answer). The request must have passed [`verify`].
pub fn accept(
    session: Addr<Session>,
    head: &RequestHead,
    io: TcpStream,
    early: BytesMut,
    max_payload: usize,
) {
    let _ = io.set_nodelay(true);
    let answer = switching_protocols(head);
    let id = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
    let conn = Arc::new(Conn {
        state: Mutex::new(ConnState {
            queue: VecDeque::new(),
            phase: Phase::Open,
            closing: false,
            handles: 1,
            stalled: false,
        }),
        wake_writer: Notify::new(),
        phase_changed: Notify::new(),
        room: Notify::new(),
    });
    let handle = WsHandle {
        id,
        conn: conn.clone(),
    };
    // Queued before anything the session sends, so the open packet follows the 101.
    session.do_send(WsOpened { conn: handle, id });
    let (read, write) = io.into_split();
    actix_rt::spawn(writer(write, answer, conn.clone()));
    // Keep only what was read ahead, exactly sized.
    let buf = if early.is_empty() {
        BytesMut::new()
    } else {
        BytesMut::from(&early[..])
    };
    actix_rt::spawn(reader(Reader {
        io: read,
        buf,
        codec: Codec::new().max_size(max_payload),
        max_payload,
        session,
        id,
        conn,
    }));
}

/// A message being reassembled from fragments.
struct Fragments {
    text: bool,
    buf: BytesMut,
}

/// The reading half of a connection.
struct Reader {
    io: OwnedReadHalf,
    buf: BytesMut,
    codec: Codec,
    max_payload: usize,
    session: Addr<Session>,
    id: u64,
    conn: Arc<Conn>,
}

/// How the read loop ended.
enum ReadEnd {
    /// The client closed the TCP connection, or it failed.
    Gone,
    /// The session aborted the connection.
    Aborted,
    /// The client sent a close frame.
    CloseFrame,
    /// The client broke the protocol: close with this code.
    Failure(CloseCode),
}

/// What one read brought.
enum Read {
    Data,
    Eof,
    Aborted,
}

impl Reader {
    /// Waits for input without holding a buffer, then appends what is there to `buf`.
    async fn read(&mut self) -> Read {
        loop {
            tokio::select! {
                biased;
                _ = self.conn.sees(|p| p == Phase::Abort) => return Read::Aborted,
                r = self.io.readable() => if r.is_err() { return Read::Eof },
            }
            let read = SCRATCH.with(|scratch| {
                let mut scratch = scratch.borrow_mut();
                let n = self.io.try_read(&mut scratch)?;
                self.buf.extend_from_slice(&scratch[..n]);
                Ok::<_, std::io::Error>(n)
            });
            match read {
                Ok(0) => return Read::Eof,
                Ok(_) => return Read::Data,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => {
                    log::debug!("websocket read failed conn={} error={}", self.id, e);
                    return Read::Eof;
                }
            }
        }
    }

    /// Decodes and forwards every complete message in the buffer.
    async fn forward(&mut self, partial: &mut Option<Fragments>) -> Result<(), ReadEnd> {
        loop {
            let frame = match self.codec.decode(&mut self.buf) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    log::info!("websocket error conn={} error={}", self.id, e);
                    return Err(ReadEnd::Failure(match e {
                        ProtocolError::Overflow => CloseCode::Size,
                        _ => CloseCode::Protocol,
                    }));
                }
            };
            let message = match frame {
                WsFrame::Text(b) => Some((true, b)),
                WsFrame::Binary(b) => Some((false, b)),
                WsFrame::Continuation(item) => {
                    assemble(partial, item, self.max_payload).map_err(ReadEnd::Failure)?
                }
                WsFrame::Ping(p) => {
                    let _ = self.conn.push(WsOut::Pong(p), false);
                    None
                }
                WsFrame::Pong(_) => None,
                WsFrame::Close(_) => return Err(ReadEnd::CloseFrame),
            };
            let Some((text, bytes)) = message else {
                continue;
            };
            let frame = if text {
                match ByteString::try_from(bytes) {
                    Ok(s) => Frame::Text(s),
                    Err(_) => return Err(ReadEnd::Failure(CloseCode::Invalid)),
                }
            } else {
                Frame::Binary(bytes)
            };
            // Straight into the mailbox while it has room; wait (and stop reading this
            // socket) only when it is full.
            let id = self.id;
            match self.session.try_send(WsInbound { id, frame }) {
                Ok(()) => {}
                Err(SendError::Full(msg)) => {
                    // Boxed: the rare path must not make every idle reader's state larger.
                    if Box::pin(self.session.send(msg)).await.is_err() {
                        return Err(ReadEnd::Gone);
                    }
                }
                Err(SendError::Closed(_)) => return Err(ReadEnd::Gone),
            }
        }
        // Hold no memory while idle (decoded frames keep their own part of the buffer alive).
        if self.buf.is_empty() {
            self.buf = BytesMut::new();
        }
        Ok(())
    }

    /// Reads and discards until the client closes or the connection is aborted.
    async fn discard(&mut self) {
        while let Read::Data = self.read().await {
            self.buf = BytesMut::new();
        }
    }

    /// After a close frame was queued: keeps reading (and discarding) until the writer has
    /// sent it and the client has closed its side, at most [`CLOSE_LINGER`]. Unread input at
    /// close would make the kernel answer with a reset, and the client could lose the close.
    async fn linger(&mut self) {
        self.buf = BytesMut::new();
        let _ = tokio::time::timeout(CLOSE_LINGER, async {
            let conn = self.conn.clone();
            tokio::select! {
                _ = conn.sees(|p| p != Phase::Open) => {},
                _ = self.discard() => return,
            }
            self.discard().await;
        })
        .await;
    }
}

/// Decodes the client's frames and hands them to the session, one at a time.
async fn reader(mut r: Reader) {
    let mut partial: Option<Fragments> = None;
    let end = loop {
        if let Err(end) = r.forward(&mut partial).await {
            break end;
        }
        match r.read().await {
            Read::Data => {}
            Read::Eof => break ReadEnd::Gone,
            Read::Aborted => break ReadEnd::Aborted,
        }
    };
    drop(partial);
    r.session.do_send(WsClosed {
        id: r.id,
        error: matches!(end, ReadEnd::Failure(_)),
    });
    let code = match end {
        ReadEnd::Gone | ReadEnd::Aborted => None,
        ReadEnd::CloseFrame => Some(CloseCode::Normal),
        ReadEnd::Failure(code) => Some(code),
    };
    if let Some(code) = code {
        // Answer (or report) with a close frame, unless the writer is already closing.
        let _ = r.conn.push(WsOut::Close(code), false);
        Box::pin(r.linger()).await;
    }
    r.conn.abort();
}

/// Adds a continuation fragment; a complete message comes back as (is text, bytes).
fn assemble(
    partial: &mut Option<Fragments>,
    item: Item,
    max: usize,
) -> Result<Option<(bool, Bytes)>, CloseCode> {
    let (first, data, last) = match item {
        Item::FirstText(b) => (Some(true), b, false),
        Item::FirstBinary(b) => (Some(false), b, false),
        Item::Continue(b) => (None, b, false),
        Item::Last(b) => (None, b, true),
    };
    match (first, partial.as_mut()) {
        (Some(text), None) => {
            *partial = Some(Fragments {
                text,
                buf: BytesMut::from(&data[..]),
            })
        }
        (None, Some(p)) => p.buf.extend_from_slice(&data),
        _ => return Err(CloseCode::Protocol),
    }
    if partial.as_ref().is_some_and(|p| p.buf.len() > max) {
        return Err(CloseCode::Size);
    }
    if !last {
        return Ok(None);
    }
    Ok(partial.take().map(|p| (p.text, p.buf.freeze())))
}

/// Encodes one queued item; true once it was the close frame.
fn encode(codec: &mut Codec, out: WsOut, buf: &mut BytesMut) -> bool {
    let (msg, last) = match out {
        WsOut::Frame(Frame::Text(t)) => (WsMessage::Text(t), false),
        WsOut::Frame(Frame::Binary(b)) => (WsMessage::Binary(b), false),
        WsOut::Pong(p) => (WsMessage::Pong(p), false),
        WsOut::Close(code) => (
            WsMessage::Close(Some(CloseReason {
                code,
                description: None,
            })),
            true,
        ),
    };
    codec.encode(msg, buf).is_err() || last
}

/// What the writer found when it looked at the queue.
enum Batch {
    /// Frames encoded into the buffer (true: the last was the close frame).
    Encoded(bool),
    /// Nothing to do yet.
    Empty,
    Aborted,
}

/// Encodes up to [`COALESCE`] queued items into `buf`.
fn take_batch(conn: &Conn, codec: &mut Codec, buf: &mut BytesMut) -> Batch {
    let (batch, was_full) = {
        let mut st = conn.state.lock();
        if st.phase == Phase::Abort {
            return Batch::Aborted;
        }
        if st.queue.is_empty() && st.handles == 0 && !st.closing {
            // The session let go of every handle without closing: nothing more can come.
            st.closing = true;
            st.queue.push_back(WsOut::Close(CloseCode::Away));
        }
        let was_full = st.queue.len() >= WS_QUEUE;
        let mut closed = false;
        let mut n = 0;
        while n < COALESCE && !closed {
            let Some(out) = st.queue.pop_front() else {
                break;
            };
            closed = encode(codec, out, buf);
            n += 1;
        }
        if st.queue.is_empty() && st.queue.capacity() > 0 {
            st.queue = VecDeque::new();
        }
        match n {
            0 => (Batch::Empty, false),
            _ => (Batch::Encoded(closed), was_full),
        }
    };
    if was_full {
        conn.room.notify_waiters();
    }
    batch
}

/// Writes all of `buf`, noting when the client's socket is full; false when the connection
/// failed or was aborted. Frames queued meanwhile are taken after this write: only an abort
/// interrupts it.
async fn write_out(io: &mut OwnedWriteHalf, buf: &mut BytesMut, conn: &Conn) -> bool {
    let mut stalled = false;
    while buf.has_remaining() {
        match io.try_write(buf.chunk()) {
            Ok(0) => {
                conn.abort();
                return false;
            }
            Ok(n) => buf.advance(n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if !stalled {
                    stalled = true;
                    conn.state.lock().stalled = true;
                }
                loop {
                    tokio::select! {
                        biased;
                        _ = conn.wake_writer.notified() => {
                            if conn.phase() == Phase::Abort {
                                return false;
                            }
                        }
                        r = io.writable() => {
                            if r.is_err() {
                                conn.abort();
                                return false;
                            }
                            break;
                        }
                    }
                }
            }
            Err(_) => {
                conn.abort();
                return false;
            }
        }
    }
    // Only a write that found the socket full touches the shared state.
    if stalled {
        conn.state.lock().stalled = false;
    }
    true
}

/// Writes the `101` answer, then queued frames, several per write, until a close frame.
async fn writer(mut io: OwnedWriteHalf, answer: BytesMut, conn: Arc<Conn>) {
    let mut codec = Codec::new();
    let mut buf = answer;
    loop {
        let closing = match take_batch(&conn, &mut codec, &mut buf) {
            Batch::Aborted => return,
            Batch::Encoded(closing) => closing,
            Batch::Empty if buf.is_empty() => {
                // Idle: hold no buffer while waiting.
                buf = BytesMut::new();
                conn.wake_writer.notified().await;
                continue;
            }
            Batch::Empty => false,
        };
        if !write_out(&mut io, &mut buf, &conn).await {
            return;
        }
        if closing {
            break;
        }
    }
    // Boxed: the closing steps must not make every idle writer's state larger.
    Box::pin(finish(io, conn)).await;
}

/// After the close frame: FIN, then let the reader wait for the client's side, at most
/// [`CLOSE_LINGER`].
async fn finish(mut io: OwnedWriteHalf, conn: Arc<Conn>) {
    tokio::select! {
        biased;
        _ = conn.sees(|p| p == Phase::Abort) => return,
        _ = io.shutdown() => {},
    }
    conn.set_phase(Phase::WriterDone);
    // A client that never answers the close is let go after a while.
    if tokio::time::timeout(CLOSE_LINGER, conn.sees(|p| p == Phase::Abort))
        .await
        .is_err()
    {
        conn.abort();
    }
}
