//! HTTP wiring: routes, the Engine.IO request dispatch, CORS, health endpoints.
//!
//! Every Engine.IO request goes through [`dispatch`], one `match` over (sid, transport, method);
//! the mapping of refusals to Engine.IO's JSON error bodies is in [`error_response`] alone.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use std::cell::RefCell;
use std::rc::Rc;
use std::task::Poll as TaskPoll;
use std::time::Duration;

use actix::prelude::*;
use actix_codec::Framed;
use actix_http::{h1, HttpService, KeepAlive, Protocol, RequestHead};
use actix_service::{
    fn_factory, fn_service, map_config, IntoServiceFactory, Service, ServiceFactory,
};
use actix_web::dev::AppConfig;
use actix_web::http::{header, Method, StatusCode};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpResponseBuilder};
use bytes::BytesMut;
use futures_util::StreamExt;
use tokio::net::TcpStream;

use super::{EngineHandler, Shared};
use crate::actors::messages::{HandshakeData, Poll, PollError, Post, Sid};
use crate::actors::socket::{CloseSession, Mode, Session};
use crate::actors::ws;
use crate::config::CorsOrigins;
use crate::protocol::engineio::{self, ErrorCode, Handshake};

/// Per-route state: the server's shared state and what this path serves.
#[derive(Clone)]
struct Route {
    shared: Arc<Shared>,
    mode: Mode,
    /// The Engine.IO path; sessions are looked up only among those it opened.
    path: Arc<str>,
}

/// Binds the listeners and starts the workers.
///
/// The server is assembled from actix's parts rather than with actix-web's `HttpServer` for one
/// reason: WebSocket connections must not keep (or even cost) the HTTP layer's per-connection
/// state. A connection whose first request is a WebSocket upgrade is served at once
/// ([`sniff_upgrade`]); an upgrade that comes later on a kept-alive connection goes to
/// [`upgrade`], which takes the TCP stream out of the HTTP layer. Both end in [`ws::accept`].
/// Every other request goes to the actix-web `App`.
pub(super) fn bind(
    shared: Arc<Shared>,
    engines: Vec<(String, Arc<dyn EngineHandler>)>,
) -> std::io::Result<(actix_server::Server, Vec<SocketAddr>)> {
    let config = shared.config.clone();
    let mut routes: Vec<Route> = engines
        .into_iter()
        .map(|(path, handler)| Route {
            shared: shared.clone(),
            mode: Mode::Engine(handler),
            path: Arc::from(path.as_str()),
        })
        .collect();
    routes.push(Route {
        shared: shared.clone(),
        mode: Mode::SocketIo,
        path: Arc::from(config.path.as_str()),
    });
    let routes: Arc<[Route]> = Arc::from(routes);
    let listeners = listeners(&config.host, config.port)?;
    let addrs = listeners
        .iter()
        .map(|l| l.local_addr())
        .collect::<std::io::Result<Vec<_>>>()?;
    let mut builder = actix_server::Server::build()
        .workers(config.workers)
        .disable_signals()
        .shutdown_timeout(5);
    for listener in listeners {
        let routes = routes.clone();
        let shared = shared.clone();
        builder = builder.listen("ferrio", listener, move || {
            let upgrades = routes.clone();
            let mut app = App::new()
                .app_data(web::Data::new(shared.clone()))
                .route("/healthz", web::get().to(healthz))
                .route("/readyz", web::get().to(readyz));
            for route in routes.iter() {
                app = app.service(
                    web::resource(paths(&route.path))
                        .app_data(web::Data::new(route.clone()))
                        .default_service(web::to(engine_io)),
                );
            }
            let sniffed = upgrades.clone();
            let http = HttpService::build()
                .keep_alive(KeepAlive::Timeout(Duration::from_secs(5)))
                .client_request_timeout(REQUEST_TIMEOUT)
                .client_disconnect_timeout(Duration::from_secs(1))
                .upgrade(fn_factory(move || {
                    let routes = upgrades.clone();
                    async move {
                        Ok::<_, ()>(fn_service(move |(req, framed)| {
                            upgrade(routes.clone(), req, framed)
                        }))
                    }
                }))
                .finish(map_config(app.into_factory(), |_| AppConfig::default()));
            // Every connection: a first request that is a WebSocket upgrade is served without
            // the HTTP layer; anything else goes to it untouched.
            fn_factory(move || {
                let http = http.new_service(());
                let routes = sniffed.clone();
                async move {
                    let http = Rc::new(http.await?);
                    Ok::<_, ()>(fn_service(move |io: TcpStream| {
                        let http = http.clone();
                        let routes = routes.clone();
                        async move {
                            let _ = io.set_nodelay(true);
                            if let Some((head, len)) = sniff_upgrade(&io).await {
                                if skip(&io, len).await.is_ok() {
                                    serve_upgrade(&routes, &head, io, BytesMut::new()).await;
                                }
                                return Ok(());
                            }
                            let peer = io.peer_addr().ok();
                            http.call((io, Protocol::Http1, peer)).await
                        }
                    }))
                }
            })
        })?;
    }
    Ok((builder.run(), addrs))
}

/// Listening sockets for every address `host` resolves to, with a backlog long enough for
/// thousands of clients connecting at once.
fn listeners(host: &str, port: u16) -> std::io::Result<Vec<std::net::TcpListener>> {
    use std::net::ToSocketAddrs;
    let mut out = Vec::new();
    let mut last_error = None;
    for addr in (host, port).to_socket_addrs()? {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        socket.set_reuse_address(true)?;
        match socket.bind(&addr.into()).and_then(|_| socket.listen(4096)) {
            Ok(()) => out.push(socket.into()),
            Err(e) => last_error = Some(e),
        }
    }
    match (out.is_empty(), last_error) {
        (true, Some(e)) => Err(e),
        (true, None) => Err(std::io::Error::new(
            std::io::ErrorKind::AddrNotAvailable,
            format!("{host}:{port} resolves to no address"),
        )),
        _ => Ok(out),
    }
}

/// `/socket.io/` and `/socket.io` both reach the Engine.IO handler.
fn paths(path: &str) -> Vec<String> {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return vec!["/".to_owned()];
    }
    vec![format!("{trimmed}/"), trimmed.to_owned()]
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok\n")
}

async fn readyz(shared: web::Data<Arc<Shared>>) -> HttpResponse {
    if shared.draining.load(Ordering::SeqCst) {
        return HttpResponse::ServiceUnavailable().body("draining\n");
    }
    if !shared.cluster_ready.load(Ordering::SeqCst) {
        return HttpResponse::ServiceUnavailable().body("redis unreachable\n");
    }
    HttpResponse::Ok()
        .content_type("text/plain")
        .body("ready\n")
}

/// The query parameters Engine.IO uses.
struct EioQuery {
    eio: Option<String>,
    transport: Option<String>,
    sid: Option<String>,
    pairs: Vec<(String, String)>,
}

fn parse_query(qs: &str) -> EioQuery {
    let pairs: Vec<(String, String)> =
        web::Query::<Vec<(String, String)>>::from_query(qs).map_or_else(|_| Vec::new(), |q| q.0);
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    EioQuery {
        eio: get("EIO"),
        transport: get("transport"),
        sid: get("sid"),
        pairs,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum TransportName {
    Polling,
    WebSocket,
}

/// The Engine.IO endpoint: every method, every transport.
async fn engine_io(req: HttpRequest, body: web::Payload, route: web::Data<Route>) -> HttpResponse {
    let cors = cors_headers(&route.shared.config.cors_origins, &req);
    let mut res = dispatch(&req, body, &route).await;
    for (k, v) in cors {
        if let (Ok(name), Ok(value)) = (
            header::HeaderName::try_from(k),
            header::HeaderValue::from_str(&v),
        ) {
            res.headers_mut().insert(name, value);
        }
    }
    res
}

/// The one routing table of Engine.IO requests.
async fn dispatch(req: &HttpRequest, body: web::Payload, route: &Route) -> HttpResponse {
    let shared = &route.shared;
    if req.method() == Method::OPTIONS {
        return if shared.config.cors_origins.is_some() {
            preflight(req)
        } else {
            error_response(ErrorCode::BadRequest)
        };
    }
    let q = parse_query(req.query_string());
    if q.eio.as_deref() != Some("4") {
        return error_response(ErrorCode::UnsupportedProtocolVersion);
    }
    let transport = match q.transport.as_deref() {
        Some("polling") => TransportName::Polling,
        Some("websocket") => TransportName::WebSocket,
        _ => return error_response(ErrorCode::TransportUnknown),
    };
    let method = req.method().clone();
    match (q.sid.as_deref(), transport, method) {
        (None, _, m) if m != Method::GET => error_response(ErrorCode::BadHandshakeMethod),
        (None, _, _) if shared.draining.load(Ordering::SeqCst) => {
            error_response(ErrorCode::Forbidden)
        }
        (None, TransportName::Polling, _) => open_polling(req, route, &q),
        // A WebSocket request without the upgrade headers (those with them go to `upgrade`).
        (None, TransportName::WebSocket, _) => error_response(ErrorCode::BadRequest),
        (Some(sid), TransportName::Polling, Method::GET) => poll(route, sid).await,
        (Some(sid), TransportName::Polling, Method::POST) => post(route, sid, body).await,
        (Some(_), TransportName::Polling, _) => error_response(ErrorCode::BadRequest),
        (Some(sid), TransportName::WebSocket, Method::GET) => {
            match shared.session(sid, &route.path) {
                Some(_) => error_response(ErrorCode::BadRequest),
                None => error_response(ErrorCode::UnknownSid),
            }
        }
        (Some(_), TransportName::WebSocket, _) => error_response(ErrorCode::BadRequest),
    }
}

/// The JSON error body Engine.IO clients understand, HTTP 400.
fn error_response(code: ErrorCode) -> HttpResponse {
    HttpResponse::BadRequest()
        .content_type("application/json")
        .body(code.to_json())
}

fn text_response(status: StatusCode, body: String) -> HttpResponse {
    HttpResponseBuilder::new(status)
        .content_type("text/plain; charset=UTF-8")
        .body(body)
}

fn handshake_data(head: &RequestHead, q: &EioQuery) -> Arc<HandshakeData> {
    let headers = head
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let issued = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    Arc::new(HandshakeData {
        headers,
        query: q.pairs.clone(),
        address: head
            .peer_addr
            .map(|a| a.ip().to_string())
            .unwrap_or_default(),
        url: head.uri.to_string(),
        issued,
        xdomain: head.headers().contains_key(header::ORIGIN),
        secure: forwarded_https(head),
    })
}

/// Whether a proxy in front says the client came over HTTPS (`Forwarded: proto=https` or
/// `X-Forwarded-Proto: https`); ferrio itself serves plain HTTP.
fn forwarded_https(head: &RequestHead) -> bool {
    let header = |name: &str| head.headers().get(name).and_then(|v| v.to_str().ok());
    if let Some(forwarded) = header("forwarded") {
        let proto = forwarded
            .split([';', ','])
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("proto"))
            .map(|(_, v)| v.trim().trim_matches('"'));
        if let Some(proto) = proto {
            return proto.eq_ignore_ascii_case("https");
        }
    }
    header("x-forwarded-proto").is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
}

fn handshake_text(shared: &Shared, sid: &str, websocket: bool) -> String {
    Handshake {
        sid: sid.to_owned(),
        upgrades: if websocket {
            vec![]
        } else {
            vec!["websocket".to_owned()]
        },
        ping_interval: shared.config.ping_interval.as_millis() as u64,
        ping_timeout: shared.config.ping_timeout.as_millis() as u64,
        max_payload: shared.config.max_payload as u64,
    }
    .to_packet_text()
}

fn open_polling(req: &HttpRequest, route: &Route, q: &EioQuery) -> HttpResponse {
    let shared = &route.shared;
    let sid = engineio::generate_id();
    let open = handshake_text(shared, &sid, false);
    let session = Session::new(
        Sid::from(sid.as_str()),
        shared.clone(),
        route.mode.clone(),
        false,
        handshake_data(req.head(), q),
    );
    shared.insert_session(Sid::from(sid.as_str()), route.path.clone(), session.start());
    log::debug!("open sid={} transport=polling", sid);
    text_response(StatusCode::OK, open)
}

/// Which session a WebSocket upgrade request is for.
enum WsTarget {
    /// A new session, opened over WebSocket.
    Open(EioQuery),
    /// An upgrade of this polling session.
    Upgrade(Addr<Session>),
}

/// The routing of a WebSocket upgrade request: the same checks as [`dispatch`], in order.
fn ws_target(route: &Route, head: &RequestHead) -> Result<WsTarget, ErrorCode> {
    let shared = &route.shared;
    let q = parse_query(head.uri.query().unwrap_or(""));
    if q.eio.as_deref() != Some("4") {
        return Err(ErrorCode::UnsupportedProtocolVersion);
    }
    if q.transport.as_deref() != Some("websocket") {
        return Err(ErrorCode::TransportUnknown);
    }
    if head.method != Method::GET {
        return Err(match q.sid {
            None => ErrorCode::BadHandshakeMethod,
            Some(_) => ErrorCode::BadRequest,
        });
    }
    if let Err(e) = ws::verify(head) {
        log::debug!("websocket handshake refused: {e}");
        return Err(ErrorCode::BadRequest);
    }
    match q.sid.as_deref() {
        None if shared.draining.load(Ordering::SeqCst) => Err(ErrorCode::Forbidden),
        None => Ok(WsTarget::Open(q)),
        Some(sid) => shared
            .session(sid, &route.path)
            .map(WsTarget::Upgrade)
            .ok_or(ErrorCode::UnknownSid),
    }
}

/// Every request with `Upgrade: websocket` comes here, with its connection: it is refused with
/// a plain HTTP answer, or the connection becomes a WebSocket.
async fn upgrade(
    routes: Arc<[Route]>,
    req: actix_http::Request,
    framed: Framed<TcpStream, h1::Codec>,
) -> Result<(), actix_http::Error> {
    let parts = framed.into_parts();
    // ws::accept keeps only the bytes read ahead, not the HTTP layer's 8 KiB buffer.
    serve_upgrade(&routes, req.head(), parts.io, parts.read_buf).await;
    Ok(())
}

/// Serves a WebSocket upgrade request whose head has been read off `io`: refused with a plain
/// HTTP answer, or the connection becomes a WebSocket. `early` holds bytes the client sent
/// behind the head that were already read.
async fn serve_upgrade(routes: &[Route], head: &RequestHead, io: TcpStream, early: BytesMut) {
    let path = head.uri.path();
    let Some(route) = routes.iter().find(|r| serves(&r.path, path)) else {
        refuse(io, "404 Not Found", "text/plain", "Not Found").await;
        return;
    };
    let shared = &route.shared;
    let max_payload = shared.config.max_payload;
    match ws_target(route, head) {
        Err(code) => {
            refuse(io, "400 Bad Request", "application/json", &code.to_json()).await;
        }
        Ok(WsTarget::Upgrade(session)) => ws::accept(session, head, io, early, max_payload),
        Ok(WsTarget::Open(q)) => {
            let sid = engineio::generate_id();
            let mut session = Session::new(
                Sid::from(sid.as_str()),
                shared.clone(),
                route.mode.clone(),
                true,
                handshake_data(head, &q),
            );
            session.queue_open(handshake_text(shared, &sid, true));
            let addr = session.start();
            shared.insert_session(Sid::from(sid.as_str()), route.path.clone(), addr.clone());
            ws::accept(addr, head, io, early, max_payload);
            log::debug!("open sid={} transport=websocket", sid);
        }
    }
}

/// How long a client may take to send its request head.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The most of a first request [`sniff_upgrade`] looks at; a longer head goes to the HTTP layer.
const SNIFF_BYTES: usize = 8192;

thread_local! {
    /// Where [`sniff_upgrade`] peeks, shared by the connections of a worker thread.
    static PEEK: RefCell<Vec<u8>> = RefCell::new(vec![0; SNIFF_BYTES]);
}

/// Looks at (without consuming) the first request of a new connection. A WebSocket upgrade
/// comes back as its head and the head's length in bytes; it is then served without the HTTP
/// layer, which would allocate a dispatcher and two 8 KiB buffers for it. They are freed at the
/// upgrade, but with thousands of clients connecting at once the allocator keeps that peak as
/// resident memory. `None` (anything else, or a head not complete in the first segment): the
/// connection goes to the HTTP layer untouched, which still hands upgrades to [`upgrade`].
async fn sniff_upgrade(io: &TcpStream) -> Option<(RequestHead, usize)> {
    let peek = std::future::poll_fn(|cx| {
        PEEK.with(|buf| {
            let mut buf = buf.borrow_mut();
            let mut read = tokio::io::ReadBuf::new(&mut buf[..]);
            match io.poll_peek(cx, &mut read) {
                TaskPoll::Ready(Ok(_)) => TaskPoll::Ready(parse_upgrade(read.filled())),
                TaskPoll::Ready(Err(_)) => TaskPoll::Ready(None),
                TaskPoll::Pending => TaskPoll::Pending,
            }
        })
    });
    let (mut head, len) = tokio::time::timeout(REQUEST_TIMEOUT, peek).await.ok()??;
    head.peer_addr = io.peer_addr().ok();
    Some((head, len))
}

/// A complete `GET` head carrying `Upgrade: websocket`, and its length.
fn parse_upgrade(data: &[u8]) -> Option<(RequestHead, usize)> {
    if !data.starts_with(b"GET ") {
        return None;
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(len) = req.parse(data).ok()? else {
        return None;
    };
    if req.version != Some(1) {
        return None;
    }
    let websocket = req.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("upgrade")
            && std::str::from_utf8(h.value)
                .is_ok_and(|v| v.trim().eq_ignore_ascii_case("websocket"))
    });
    if !websocket {
        return None;
    }
    let mut head = RequestHead::default();
    head.method = Method::GET;
    head.version = actix_http::Version::HTTP_11;
    head.uri = req.path?.parse().ok()?;
    for h in req.headers.iter() {
        let name = header::HeaderName::from_bytes(h.name.as_bytes()).ok()?;
        let value = header::HeaderValue::from_bytes(h.value).ok()?;
        head.headers_mut().append(name, value);
    }
    Some((head, len))
}

/// Reads and drops the `len` bytes of a head that [`sniff_upgrade`] looked at.
async fn skip(io: &TcpStream, mut len: usize) -> std::io::Result<()> {
    while len > 0 {
        io.readable().await?;
        let n = PEEK.with(|buf| {
            let mut buf = buf.borrow_mut();
            let end = len.min(buf.len());
            io.try_read(&mut buf[..end])
        });
        match n {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => len -= n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Whether the Engine.IO path `engine` serves the request path `path` (with or without the
/// trailing slash), as the `App` routes do.
fn serves(engine: &str, path: &str) -> bool {
    paths(engine).iter().any(|p| p == path)
}

/// Answers an upgrade request with a plain HTTP error and closes the connection.
async fn refuse(mut io: TcpStream, status: &str, content_type: &str, body: &str) {
    use tokio::io::AsyncWriteExt;
    let answer = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    );
    let write = async {
        io.write_all(answer.as_bytes()).await?;
        io.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), write).await;
}

fn poll_error(e: PollError) -> HttpResponse {
    match e {
        PollError::BadRequest => error_response(ErrorCode::BadRequest),
        PollError::UnknownSid => error_response(ErrorCode::UnknownSid),
    }
}

async fn poll(route: &Route, sid: &str) -> HttpResponse {
    let Some(session) = route.shared.session(sid, &route.path) else {
        return error_response(ErrorCode::UnknownSid);
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    if session.send(Poll { reply: tx }).await.is_err() {
        return error_response(ErrorCode::UnknownSid);
    }
    match rx.await {
        Ok(Ok(payload)) => text_response(StatusCode::OK, payload),
        Ok(Err(e)) => poll_error(e),
        Err(_) => error_response(ErrorCode::UnknownSid),
    }
}

async fn post(route: &Route, sid: &str, mut body: web::Payload) -> HttpResponse {
    let shared = &route.shared;
    let Some(session) = shared.session(sid, &route.path) else {
        return error_response(ErrorCode::UnknownSid);
    };
    let limit = shared.config.max_payload;
    let mut buf = web::BytesMut::new();
    while let Some(chunk) = body.next().await {
        let Ok(chunk) = chunk else {
            return error_response(ErrorCode::BadRequest);
        };
        if buf.len() + chunk.len() > limit {
            log::info!("payload too large sid={} limit={}", sid, limit);
            session.do_send(CloseSession {
                reason: crate::actors::messages::DisconnectReason::TransportError,
            });
            return HttpResponse::PayloadTooLarge()
                .content_type("text/plain")
                .body("payload too large");
        }
        buf.extend_from_slice(&chunk);
    }
    match session.send(Post { body: buf.freeze() }).await {
        Ok(Ok(())) => text_response(StatusCode::OK, "ok".to_owned()),
        Ok(Err(e)) => poll_error(e),
        Err(_) => error_response(ErrorCode::UnknownSid),
    }
}

/// CORS headers for an allowed `Origin` (none when CORS is not configured).
fn cors_headers(cors: &Option<CorsOrigins>, req: &HttpRequest) -> Vec<(&'static str, String)> {
    let Some(cors) = cors else {
        return Vec::new();
    };
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok());
    match (cors, origin) {
        (CorsOrigins::Any, None) => vec![("access-control-allow-origin", "*".to_owned())],
        (_, Some(origin)) if cors.allows(origin) => vec![
            ("access-control-allow-origin", origin.to_owned()),
            ("access-control-allow-credentials", "true".to_owned()),
            ("vary", "Origin".to_owned()),
        ],
        _ => Vec::new(),
    }
}

fn preflight(req: &HttpRequest) -> HttpResponse {
    let mut res = HttpResponse::NoContent();
    res.insert_header((
        "access-control-allow-methods",
        "GET,HEAD,PUT,PATCH,POST,DELETE",
    ));
    if let Some(h) = req
        .headers()
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .and_then(|v| v.to_str().ok())
    {
        res.insert_header(("access-control-allow-headers", h.to_owned()));
    }
    res.insert_header(("access-control-max-age", "600"));
    res.finish()
}
