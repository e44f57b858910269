//! Response helpers: JSON errors (every 4xx/5xx body is `{"error": "..."}`) and body types.

use std::convert::Infallible;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full};

/// The response body every handler returns.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

pub fn json(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// `{"error": reason}` with `status`.
pub fn error(status: StatusCode, reason: impl std::fmt::Display) -> Response<Body> {
    let body = serde_json::json!({ "error": reason.to_string() }).to_string();
    json(status, body)
}
