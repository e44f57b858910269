//! `/echo`: the seeds' echo view (dwebsocket's `@accept_websocket`): one URL for HTTP and
//! WebSocket. A plain GET (or HEAD) answers a small HTML page; a WebSocket handshake gets
//! every text and binary message back unchanged (fragmented messages reassembled), up to
//! `max_message_bytes`. The socket runs through [`super::ws::run`], the session code of
//! `/ws/{topic}`, so the same handshake checks, close codes and bounds apply, and testing one
//! (the Autobahn|Testsuite runs here; `scripts/autobahn/run.sh`) tests the other.
//!
//! ```text
//! GET /echo HTTP/1.1                 HTTP/1.1 200 OK, text/html page
//! GET /echo + Upgrade: websocket     101, then  81 85 <mask> "hello"  ->  81 05 "hello"
//! CONNECT /echo, :protocol websocket 200 (HTTP/2, RFC 8441), then the same frames in DATA
//! ```

use std::sync::Arc;

use http::{header, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;

use super::ws::{self, Serve};
use crate::http_util::{self, Body};
use crate::Shared;

/// The page a plain GET gets.
const PAGE: &str = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>pushlab echo</title></head>\n<body><h1>pushlab echo</h1>\n<p>Open a WebSocket to this URL: every text or binary message comes back unchanged.</p>\n</body></html>\n";

/// `GET /echo` (or `HEAD`): the page, or the echo WebSocket.
pub fn handle(req: Request<Incoming>, shared: Arc<Shared>) -> Response<Body> {
    match ws::check_handshake(&req, &shared) {
        Ok(Some(handshake)) => ws::upgrade(req, shared, handshake, Serve::Echo),
        Ok(None) => {
            let mut r = Response::new(http_util::full(PAGE));
            *r.status_mut() = StatusCode::OK;
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            r
        }
        Err(r) => r,
    }
}
