//! The browser page at `/`: static files compiled into the binary (no outside dependency).

use http::{header, HeaderValue, Response};

use crate::http_util::{self, Body};

/// A static file of the page.
#[derive(Clone, Copy, Debug)]
pub struct Asset {
    pub content_type: &'static str,
    pub bytes: &'static [u8],
}

/// The asset served at `/{name}` (`""` is the page itself).
pub fn asset(name: &str) -> Option<Asset> {
    let (content_type, bytes): (&str, &[u8]) = match name {
        "" | "index.html" => ("text/html; charset=utf-8", include_bytes!("index.html")),
        _ => return None,
    };
    Some(Asset {
        content_type,
        bytes,
    })
}

pub fn response(asset: Asset) -> Response<Body> {
    let mut r = Response::new(http_util::full(asset.bytes));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    r
}
