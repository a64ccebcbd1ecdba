//! HTTP wiring: routes, the Engine.IO request dispatch, CORS, health endpoints.
//!
//! Every Engine.IO request goes through [`dispatch`], one `match` over (sid, transport, method);
//! the mapping of refusals to Engine.IO's JSON error bodies is in [`error_response`] alone.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use actix_web::http::{header, Method, StatusCode};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpResponseBuilder, HttpServer};
use futures_util::StreamExt;

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

/// Binds the listener and starts the workers.
pub(super) fn bind(
    shared: Arc<Shared>,
    engines: Vec<(String, Arc<dyn EngineHandler>)>,
) -> std::io::Result<(actix_web::dev::Server, Vec<SocketAddr>)> {
    let config = shared.config.clone();
    let factory_shared = shared.clone();
    let server = HttpServer::new(move || {
        let sio = Route {
            shared: factory_shared.clone(),
            mode: Mode::SocketIo,
            path: Arc::from(factory_shared.config.path.as_str()),
        };
        let mut app = App::new()
            .app_data(web::Data::new(factory_shared.clone()))
            .route("/healthz", web::get().to(healthz))
            .route("/readyz", web::get().to(readyz));
        for (path, handler) in &engines {
            let route = Route {
                shared: factory_shared.clone(),
                mode: Mode::Engine(handler.clone()),
                path: Arc::from(path.as_str()),
            };
            app = app.service(
                web::resource(paths(path))
                    .app_data(web::Data::new(route))
                    .default_service(web::to(engine_io)),
            );
        }
        app.service(
            web::resource(paths(&factory_shared.config.path))
                .app_data(web::Data::new(sio))
                .default_service(web::to(engine_io)),
        )
    })
    .workers(config.workers)
    .disable_signals()
    .shutdown_timeout(5)
    .bind((config.host.as_str(), config.port))?;
    let addrs = server.addrs();
    Ok((server.run(), addrs))
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
        (None, TransportName::WebSocket, _) => open_websocket(req, body, route, &q),
        (Some(sid), TransportName::Polling, Method::GET) => poll(route, sid).await,
        (Some(sid), TransportName::Polling, Method::POST) => post(route, sid, body).await,
        (Some(_), TransportName::Polling, _) => error_response(ErrorCode::BadRequest),
        (Some(sid), TransportName::WebSocket, Method::GET) => {
            match shared.session(sid, &route.path) {
                Some(session) => upgrade(req, body, session, shared),
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

fn handshake_data(req: &HttpRequest, q: &EioQuery) -> Arc<HandshakeData> {
    let headers = req
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
        address: req
            .peer_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_default(),
        url: req.uri().to_string(),
        issued,
        xdomain: req.headers().contains_key(header::ORIGIN),
        secure: req.connection_info().scheme() == "https",
    })
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
        handshake_data(req, q),
    );
    shared.insert_session(Sid::from(sid.as_str()), route.path.clone(), session.start());
    log::debug!("open sid={} transport=polling", sid);
    text_response(StatusCode::OK, open)
}

fn open_websocket(
    req: &HttpRequest,
    body: web::Payload,
    route: &Route,
    q: &EioQuery,
) -> HttpResponse {
    let shared = &route.shared;
    let sid = engineio::generate_id();
    let mut session = Session::new(
        Sid::from(sid.as_str()),
        shared.clone(),
        route.mode.clone(),
        true,
        handshake_data(req, q),
    );
    session.queue_open(handshake_text(shared, &sid, true));
    let addr = session.start();
    match ws::start(addr.clone(), req, body, shared.config.max_payload) {
        Ok(res) => {
            shared.insert_session(Sid::from(sid.as_str()), route.path.clone(), addr);
            log::debug!("open sid={} transport=websocket", sid);
            res
        }
        Err(e) => {
            addr.do_send(CloseSession {
                reason: crate::actors::messages::DisconnectReason::TransportError,
            });
            log::debug!("websocket handshake refused: {e}");
            error_response(ErrorCode::BadRequest)
        }
    }
}

fn upgrade(
    req: &HttpRequest,
    body: web::Payload,
    session: Addr<Session>,
    shared: &Shared,
) -> HttpResponse {
    match ws::start(session, req, body, shared.config.max_payload) {
        Ok(res) => res,
        Err(_) => error_response(ErrorCode::BadRequest),
    }
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
