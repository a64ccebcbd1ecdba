//! The WebSocket transport: the only module that knows `actix-web-actors`.
//!
//! A [`WsConn`] actor owns one WebSocket. It forwards every frame it reads to its session (the
//! socket actor) and writes whatever frames the session hands it. It holds no protocol state, so
//! a move to `actix-ws` stays inside this file.
//!
//! Limits: a frame larger than `FERRIO_MAX_PAYLOAD` is a protocol error of the WebSocket codec,
//! which closes the connection (message 1009) before anything reaches the session.
//!
//! Known limit of actix-web-actors: writes go into the context's buffer with no signal when the
//! peer is slow, so the bound on a slow WebSocket reader is the session's outbound queue and
//! mailbox, not the socket buffer.

use std::sync::atomic::{AtomicU64, Ordering};

use actix::prelude::*;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_web_actors::ws;

use super::messages::Frame;
use super::messages::{WsClosed, WsInbound, WsOpened};
use super::socket::Session;

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// Frames for the WebSocket, or an order to close it.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub enum WsOut {
    Frames(Vec<Frame>),
    Frame(Frame),
    Close,
}

/// One WebSocket connection.
pub struct WsConn {
    /// The session this WebSocket carries.
    session: Addr<Session>,
    /// Tells this connection apart from an older or newer one of the same session.
    id: u64,
}

impl WsConn {
    /// Id of this connection, as given in `WsOpened`.
    pub fn id(&self) -> u64 {
        self.id
    }
}

/// Upgrades the request to a WebSocket bound to `session`.
pub fn start(
    session: Addr<Session>,
    req: &HttpRequest,
    stream: web::Payload,
    max_payload: usize,
) -> Result<HttpResponse, actix_web::Error> {
    let conn = WsConn {
        session,
        id: NEXT_CONN.fetch_add(1, Ordering::Relaxed),
    };
    let mut res = ws::handshake(req)?;
    let codec = actix_http::ws::Codec::new().max_size(max_payload);
    Ok(res.streaming(ws::WebsocketContext::with_codec(conn, stream, codec)))
}

impl Actor for WsConn {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.session.do_send(WsOpened {
            conn: ctx.address(),
            id: self.id,
        });
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.session.do_send(WsClosed {
            id: self.id,
            error: false,
        });
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for WsConn {
    fn handle(&mut self, item: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        let frame = match item {
            Ok(ws::Message::Text(text)) => Frame::Text(text),
            Ok(ws::Message::Binary(bin)) => Frame::Binary(bin),
            Ok(ws::Message::Ping(p)) => {
                ctx.pong(&p);
                return;
            }
            Ok(ws::Message::Pong(_)) | Ok(ws::Message::Nop) => return,
            Ok(ws::Message::Continuation(_)) => {
                // Fragmented messages are not used by socket.io clients; refuse them.
                self.fail(ctx, "fragmented message");
                return;
            }
            Ok(ws::Message::Close(_)) => {
                ctx.close(None);
                ctx.stop();
                return;
            }
            Err(ws::ProtocolError::Io(e)) => {
                // The peer went away without a close frame: a close, not a failure.
                log::debug!("websocket closed by peer conn={} error={}", self.id, e);
                ctx.stop();
                return;
            }
            Err(e) => {
                self.fail(ctx, &e.to_string());
                return;
            }
        };
        self.session.do_send(WsInbound { id: self.id, frame });
    }
}

impl WsConn {
    fn fail(&mut self, ctx: &mut ws::WebsocketContext<Self>, why: &str) {
        log::info!("websocket error conn={} error={}", self.id, why);
        self.session.do_send(WsClosed {
            id: self.id,
            error: true,
        });
        ctx.close(Some(ws::CloseReason {
            code: ws::CloseCode::Size,
            description: None,
        }));
        ctx.stop();
    }
}

fn write(ctx: &mut ws::WebsocketContext<WsConn>, frame: Frame) {
    match frame {
        Frame::Text(t) => ctx.text(t),
        Frame::Binary(b) => ctx.binary(b),
    }
}

impl Handler<WsOut> for WsConn {
    type Result = ();
    fn handle(&mut self, msg: WsOut, ctx: &mut Self::Context) {
        match msg {
            WsOut::Frame(f) => write(ctx, f),
            WsOut::Frames(frames) => {
                for f in frames {
                    write(ctx, f);
                }
            }
            WsOut::Close => {
                ctx.close(None);
                ctx.stop();
            }
        }
    }
}
