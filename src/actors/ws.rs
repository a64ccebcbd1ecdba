//! The WebSocket transport: the only module that knows how WebSocket frames travel.
//!
//! It is built directly on actix-http's WebSocket codec: the handshake response streams frames
//! from a bounded channel, and a reader task decodes the request body. Each WebSocket has:
//! - a **reader** task that decodes frames and forwards each to its session (the socket actor),
//!   straight into its mailbox while there is room and with `send().await` when it is full, so
//!   a session that cannot keep up stops the reading of its own socket and nothing else;
//! - a **writer** stream (the response body) that takes frames from a bounded channel
//!   ([`WsHandle`]) and encodes whatever is queued into one chunk, so several frames for one
//!   connection become one write. When the client reads slowly, the HTTP dispatcher stops
//!   pulling, the channel fills, `try_send` fails, and the session applies its slow-consumer
//!   policy (frames wait in its bounded queue; past `FERRIO_SOCKET_BUFFER`, volatile packets are
//!   dropped and anything else closes the session). Aborting ends the body stream, so even a
//!   client that never reads is let go (after actix's client-disconnect timeout).
//!
//! Limits: a frame, or a fragmented message, larger than `FERRIO_MAX_PAYLOAD` closes the
//! connection with code 1009 before anything reaches the session.
//!
//! History: this replaced `actix-web-actors` (deprecated), whose `WebsocketContext` could only
//! be stopped from inside the actor, so a connection whose client never reads could not be cut
//! off; `actix-ws` was tried too, and kept a whole 8 KiB read chunk alive per idle connection.

use std::sync::atomic::{AtomicU64, Ordering};

use actix::dev::SendError;
use actix::prelude::*;
use actix_http::ws::{
    CloseCode, CloseReason, Codec, Frame as WsFrame, Item, Message as WsMessage, ProtocolError,
};
use actix_web::body::{BodyStream, MessageBody};
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio_util::codec::{Decoder, Encoder};

use super::messages::{Frame, WsClosed, WsInbound, WsOpened};
use super::socket::Session;

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// Frames queued for one WebSocket before its session sees it as full.
const WS_QUEUE: usize = 32;

/// Frames encoded into one chunk (one write) at most.
const COALESCE: usize = 64;

/// What a session (or the reader) asks of the writer.
#[derive(Debug)]
enum WsOut {
    Frame(Frame),
    /// Answer a client's ping.
    Pong(Bytes),
    /// Close after the frames queued before it, with this code.
    Close(CloseCode),
}

/// Why a frame could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsSendError {
    /// The client reads slower than we write.
    Full,
    /// The WebSocket is gone.
    Closed,
}

/// The session's end of one WebSocket. Cheap to clone.
#[derive(Clone, Debug)]
pub struct WsHandle {
    id: u64,
    tx: mpsc::Sender<WsOut>,
    stop: watch::Sender<bool>,
}

impl WsHandle {
    /// Tells this connection apart from an older or newer one of the same session.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Queues a frame without waiting; gives it back when it cannot be queued.
    pub fn try_send(&self, frame: Frame) -> Result<(), (Frame, WsSendError)> {
        match self.tx.try_send(WsOut::Frame(frame)) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(WsOut::Frame(f))) => Err((f, WsSendError::Full)),
            Err(mpsc::error::TrySendError::Closed(WsOut::Frame(f))) => {
                Err((f, WsSendError::Closed))
            }
            // Only frames are sent above: nothing else can come back.
            Err(_) => Err((Frame::Text(ByteString::new()), WsSendError::Closed)),
        }
    }

    /// Resolves once the queue has room again (or the WebSocket is gone).
    pub fn ready(&self) -> impl std::future::Future<Output = ()> + 'static {
        let tx = self.tx.clone();
        async move {
            let _ = tx.reserve().await;
        }
    }

    /// Closes after the queued frames; a full queue (a slow reader) is cut off at once.
    pub fn close(&self) {
        if self.tx.try_send(WsOut::Close(CloseCode::Normal)).is_err() {
            self.abort();
        }
    }

    /// Drops the connection now, queued frames included.
    pub fn abort(&self) {
        let _ = self.stop.send(true);
    }
}

/// Upgrades the request to a WebSocket bound to `session`.
pub fn start(
    session: Addr<Session>,
    req: &HttpRequest,
    body: web::Payload,
    max_payload: usize,
) -> Result<HttpResponse, actix_web::Error> {
    let mut builder = actix_http::ws::handshake(req.head())?;
    let id = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = mpsc::channel(WS_QUEUE);
    let (stop, stopped) = watch::channel(false);
    let handle = WsHandle {
        id,
        tx: tx.clone(),
        stop: stop.clone(),
    };
    session.do_send(WsOpened { conn: handle, id });
    actix_rt::spawn(reader(
        body,
        max_payload,
        session,
        id,
        tx,
        stop.clone(),
        stopped.clone(),
    ));
    let out = writer(rx, stopped, stop);
    let response = builder.message_body(BodyStream::new(out).boxed())?;
    Ok(HttpResponse::from(response))
}

/// A message being reassembled from fragments.
struct Fragments {
    text: bool,
    buf: BytesMut,
}

/// Decodes the request body into frames and hands them to the session, one at a time.
async fn reader(
    mut body: web::Payload,
    max_payload: usize,
    session: Addr<Session>,
    id: u64,
    tx: mpsc::Sender<WsOut>,
    stop: watch::Sender<bool>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut codec = Codec::new().max_size(max_payload);
    let mut buf = BytesMut::new();
    let mut partial: Option<Fragments> = None;
    let mut failure: Option<CloseCode> = None;
    // A close frame is queued for the writer: wait for it to go out before letting go.
    let mut close_queued = false;
    'read: loop {
        let chunk = tokio::select! {
            chunk = body.next() => chunk,
            _ = stopped.changed() => break,
        };
        match chunk {
            Some(Ok(bytes)) => buf.extend_from_slice(&bytes),
            Some(Err(e)) => {
                log::debug!("websocket closed by peer conn={} error={}", id, e);
                break;
            }
            None => break,
        }
        loop {
            let frame = match codec.decode(&mut buf) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    log::info!("websocket error conn={} error={}", id, e);
                    failure = Some(match e {
                        ProtocolError::Overflow => CloseCode::Size,
                        _ => CloseCode::Protocol,
                    });
                    break 'read;
                }
            };
            let message = match frame {
                WsFrame::Text(b) => Some((true, b)),
                WsFrame::Binary(b) => Some((false, b)),
                WsFrame::Continuation(item) => match assemble(&mut partial, item, max_payload) {
                    Ok(done) => done,
                    Err(code) => {
                        failure = Some(code);
                        break 'read;
                    }
                },
                WsFrame::Ping(p) => {
                    let _ = tx.try_send(WsOut::Pong(p));
                    None
                }
                WsFrame::Pong(_) => None,
                WsFrame::Close(_) => {
                    close_queued = tx.try_send(WsOut::Close(CloseCode::Normal)).is_ok();
                    break 'read;
                }
            };
            let Some((text, bytes)) = message else {
                continue;
            };
            let frame = if text {
                match ByteString::try_from(bytes) {
                    Ok(s) => Frame::Text(s),
                    Err(_) => {
                        failure = Some(CloseCode::Invalid);
                        break 'read;
                    }
                }
            } else {
                Frame::Binary(bytes)
            };
            // Straight into the mailbox while it has room; wait (and stop reading this
            // socket) only when it is full.
            match session.try_send(WsInbound { id, frame }) {
                Ok(()) => {}
                Err(SendError::Full(msg)) => {
                    if session.send(msg).await.is_err() {
                        break 'read;
                    }
                }
                Err(SendError::Closed(_)) => break 'read,
            }
        }
        // After a large message, give the memory back instead of keeping it per connection.
        if buf.is_empty() && buf.capacity() > 4096 {
            buf = BytesMut::new();
        }
    }
    session.do_send(WsClosed {
        id,
        error: failure.is_some(),
    });
    if let Some(code) = failure {
        close_queued = tx.try_send(WsOut::Close(code)).is_ok();
    }
    if close_queued {
        // Keep (and discard) the request body until the writer has handed over the close
        // frame: dropping the body first makes the HTTP layer drop the connection without
        // flushing it, and the client would never hear the close code.
        let deadline = tokio::time::sleep(std::time::Duration::from_secs(2));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                chunk = body.next() => if chunk.is_none() { break },
                _ = stopped.changed() => break,
                _ = &mut deadline => break,
            }
        }
    }
    let _ = stop.send(true);
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

/// The response body: frames from the channel, encoded, several per chunk.
fn writer(
    rx: mpsc::Receiver<WsOut>,
    stopped: watch::Receiver<bool>,
    stop: watch::Sender<bool>,
) -> impl futures_util::Stream<Item = Result<Bytes, actix_web::Error>> + 'static {
    struct State {
        rx: mpsc::Receiver<WsOut>,
        stopped: watch::Receiver<bool>,
        /// Told when the last chunk has been taken, so the reader may let go of the body.
        stop: watch::Sender<bool>,
        codec: Codec,
        done: bool,
    }
    let state = State {
        rx,
        stopped,
        stop,
        codec: Codec::new(),
        done: false,
    };
    futures_util::stream::unfold(state, |mut st| async move {
        if st.done {
            let _ = st.stop.send(true);
            return None;
        }
        let first = tokio::select! {
            biased;
            _ = st.stopped.changed() => return None,
            out = st.rx.recv() => out,
        };
        let mut chunk = BytesMut::new();
        let mut next = first;
        let mut n = 0;
        loop {
            match next {
                Some(out) => {
                    let msg = match out {
                        WsOut::Frame(Frame::Text(t)) => WsMessage::Text(t),
                        WsOut::Frame(Frame::Binary(b)) => WsMessage::Binary(b),
                        WsOut::Pong(p) => WsMessage::Pong(p),
                        WsOut::Close(code) => {
                            st.done = true;
                            WsMessage::Close(Some(CloseReason {
                                code,
                                description: None,
                            }))
                        }
                    };
                    if st.codec.encode(msg, &mut chunk).is_err() {
                        st.done = true;
                    }
                }
                None => st.done = true,
            }
            n += 1;
            if st.done || n >= COALESCE {
                break;
            }
            next = match st.rx.try_recv() {
                Ok(out) => Some(out),
                Err(_) => break,
            };
        }
        if chunk.is_empty() {
            let _ = st.stop.send(true);
            return None;
        }
        Some((Ok(chunk.freeze()), st))
    })
}
