//! One `match` on (method, path) that hands each request to its transport.
//!
//! ```text
//! GET  /                      the browser page (and its assets)
//! GET  /poll/{topic}          short poll          GET  /sse/{topic}      Server-Sent Events
//! GET  /longpoll/{topic}      long poll           GET  /stream/{topic}   chunked NDJSON
//! GET  /ws/{topic}            WebSocket           POST /publish/{topic}  publish
//! GET  /metrics  /healthz      GET  /ticker  POST /ticker?rate=R   built-in ticker's rate
//! GET  /echo                  echo page, or an echo WebSocket (transport::echo)
//! GET  /tls                   the TLS certificate's SPKI pin and PEM (404 when TLS is off)
//! ```
//!
//! On HTTP/2 a WebSocket (`/ws/{topic}`, `/echo`) is opened by an extended CONNECT (RFC 8441
//! §4: `:method CONNECT`, `:protocol websocket`) instead of a GET with `Upgrade`.
//!
//! Every GET route answers HEAD too (RFC 9110 §9.3.2). Before routing, `guard::admit` answers
//! the request-head MUSTs of RFC 9112 §3 (Host, request-target length) and the bounds.

use std::convert::Infallible;
use std::sync::Arc;

use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use pushlab_proto::cursor::check_topic;
use pushlab_proto::Transport;

use crate::feed::{FeedError, Topic};
use crate::guard::{self, Admission, ConnGuard};
use crate::http_util::{self, Body};
use crate::metrics::{Rejection, Slot};
use crate::{page, transport, Shared, TopicError};

/// Routes one request that arrived on the connection `conn` (whose bounds state also credits
/// its bytes to the slot the request names). Never fails: every problem becomes a JSON error
/// response.
pub async fn route(
    req: Request<Incoming>,
    shared: Arc<Shared>,
    conn: Arc<ConnGuard>,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    let (head, topic) = match path.strip_prefix('/').unwrap_or(&path).split_once('/') {
        Some((head, topic)) => (head, Some(topic)),
        None => (path.strip_prefix('/').unwrap_or(&path), None),
    };
    let slot = match (head, topic) {
        ("publish", Some(_)) => Slot::Publish,
        (h, Some(_)) => h
            .parse::<Transport>()
            .ok()
            .filter(|t| t.path_segment() == h)
            .map_or(Slot::Other, Slot::Transport),
        _ => Slot::Other,
    };
    conn.counter().tag(slot);
    shared
        .metrics
        .slot(slot)
        .requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (protocol, first) = conn.protocol_of(req.version());
    shared.metrics.count_protocol(slot, protocol, first);
    // The bounds of `guard` (head size, CORS, origin, token, publish rate) come first.
    let _in_flight = conn.request();
    let cfg = &shared.config;
    let cors = match guard::admit(&req, cfg, &shared.metrics, slot, &conn) {
        Admission::Pass(cors) => cors,
        Admission::Answer(r) => return Ok(r),
    };

    let method = req.method().clone();
    let mut response = match (slot, topic) {
        (Slot::Other, None) => match (&method, head) {
            (&Method::GET | &Method::HEAD, "healthz") => healthz(&shared),
            (&Method::GET | &Method::HEAD, "metrics") => metrics(&shared),
            (&Method::GET | &Method::HEAD, "ticker") => transport::publish::ticker_rate(&shared),
            (&Method::GET | &Method::HEAD | &Method::CONNECT, "echo") => {
                transport::echo::handle(req, shared.clone())
            }
            (&Method::GET | &Method::HEAD, "tls") => tls_pin(&shared),
            (&Method::POST | &Method::PUT, "ticker") => {
                transport::publish::set_ticker_rate(&shared, req.uri().query())
            }
            (&Method::GET | &Method::HEAD, _) => match page::asset(head) {
                Some(asset) => page::response(asset),
                None => not_found(&shared, &path),
            },
            (_, "healthz" | "metrics" | "echo" | "tls") => method_not_allowed(&shared, "GET, HEAD"),
            (_, "ticker") => method_not_allowed(&shared, "GET, POST"),
            (_, _) if page::asset(head).is_some() => method_not_allowed(&shared, "GET"),
            _ => not_found(&shared, &path),
        },
        (Slot::Other, Some(_)) => not_found(&shared, &path),
        (Slot::Publish, Some(name)) => {
            if method != Method::POST {
                method_not_allowed(&shared, "POST")
            } else {
                match topic_for(&shared, name).await {
                    Ok(topic) => transport::publish::handle(req, &shared, &topic).await,
                    Err(r) => r,
                }
            }
        }
        (Slot::Transport(t), Some(name)) => {
            let connect = method == Method::CONNECT && t == Transport::Ws;
            if method != Method::GET && method != Method::HEAD && !connect {
                method_not_allowed(&shared, "GET, HEAD")
            } else {
                match topic_for(&shared, name).await {
                    Ok(topic) => transport::handle(t, req, shared.clone(), topic).await,
                    Err(r) => r,
                }
            }
        }
        (_, None) => not_found(&shared, &path),
    };
    guard::decorate(&mut response, cors);
    Ok(response)
}

/// The topic named in the path, made on first use; 400 for a bad name, 503 past the limit or
/// while a backplane cannot be asked about a new topic.
async fn topic_for(shared: &Shared, name: &str) -> Result<Arc<Topic>, Response<Body>> {
    if let Err(e) = check_topic(name) {
        shared.metrics.reject(Rejection::BadRequest);
        return Err(http_util::error(StatusCode::BAD_REQUEST, e));
    }
    shared.topic(name).await.map_err(|e| match e {
        TopicError::Feed(e @ FeedError::TooManyTopics(_)) => {
            shared.metrics.reject(Rejection::TopicLimit);
            transport::unavailable(e, "60")
        }
        TopicError::Feed(other) => http_util::error(StatusCode::BAD_REQUEST, other),
        TopicError::Backplane(e) => transport::backplane_down(shared, e),
    })
}

/// `GET /healthz`: `{"status":"ok"}`, or 200 `{"status":"degraded","backplane":"down"}` while
/// the backplane is down: the replica still serves its subscribers (a 503 would make a load
/// balancer drop every replica at once, since they share the one Redis), only publishes fail.
fn healthz(shared: &Shared) -> Response<Body> {
    match &shared.backplane {
        Some(bp) if !bp.is_up() => http_util::json(
            StatusCode::OK,
            r#"{"status":"degraded","backplane":"down"}"#,
        ),
        Some(_) => http_util::json(StatusCode::OK, r#"{"status":"ok","backplane":"up"}"#),
        None => http_util::json(StatusCode::OK, r#"{"status":"ok"}"#),
    }
}

fn metrics(shared: &Shared) -> Response<Body> {
    let mut text = shared.metrics.render(shared.feed.topic_count());
    text.push_str(&shared.feed.render_metrics());
    if let Some(bp) = &shared.backplane {
        text.push_str(&bp.render_metrics());
    }
    let mut r = Response::new(http_util::full(text));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    r
}

/// `GET /tls`: what a client needs to pin the server's certificate.
fn tls_pin(shared: &Shared) -> Response<Body> {
    match &shared.config.tls {
        Some(tls) => http_util::json(StatusCode::OK, tls.json()),
        None => not_found(shared, "/tls (TLS is off: see --tls-self-signed)"),
    }
}

fn not_found(shared: &Shared, path: &str) -> Response<Body> {
    shared.metrics.reject(Rejection::NotFound);
    let shown: String = path.chars().take(80).collect();
    http_util::error(StatusCode::NOT_FOUND, format!("no such endpoint: {shown}"))
}

fn method_not_allowed(shared: &Shared, allow: &'static str) -> Response<Body> {
    shared.metrics.reject(Rejection::MethodNotAllowed);
    let mut r = http_util::error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method not allowed here; use {allow}"),
    );
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}
