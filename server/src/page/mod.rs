//! The browser page at `/`: static files compiled into the binary (no outside dependency), so
//! it works offline. One column per transport, each following the same topic through the
//! browser's own client (fetch on an interval, a fetch loop, `EventSource`, a fetch body
//! reader, `WebSocket`), plus a chat box and the ticker control (`POST /ticker?rate=R`).
//!
//! ```text
//! GET /          index.html   the page (columns are built by page.js from a template)
//! GET /page.css  page.css
//! GET /page.js   page.js      the five clients; see its header for the test hooks
//! ```

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
        "page.css" => ("text/css; charset=utf-8", include_bytes!("page.css")),
        "page.js" => ("text/javascript; charset=utf-8", include_bytes!("page.js")),
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
