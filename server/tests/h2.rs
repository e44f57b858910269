//! HTTP/2 (cleartext with prior knowledge, and over TLS) and TLS (HTTP/1.1 and HTTP/2), with
//! real clients over sockets on 127.0.0.1:0.
//!
//! - [`link`]: the client side of a connection: TCP counted (wire bytes), TLS (rustls, ALPN),
//!   counted again above TLS (plaintext), and a clean close that reads until the server's end.
//! - [`sub`]: one subscriber per transport over hyper's HTTP/2 client (poll, long poll, SSE,
//!   NDJSON) or, for WebSocket, tokio-tungstenite over an RFC 8441 extended-CONNECT stream
//!   (the h2 crate) or over wss on HTTP/1.1.
//! - [`transports`]: every transport on h2c, on h2 over TLS, and WebSocket on wss: every
//!   message in order, once, and the server's wire and plaintext byte counters equal to what
//!   the client's sockets counted.
//! - [`hostile`]: bad input on HTTP/2 and TLS, answered as RFC 9113 says, bounded, counted,
//!   and the server keeps serving others.
//! - [`curl`]: curl `--http2-prior-knowledge` and `-k --http2` against the server (skipped with
//!   a printed reason when curl is absent).
//! - [`h2load`]: nghttp2's h2load, 200 polls over h2c and over TLS (skipped without h2load).

#[path = "h2/link.rs"]
mod link;
#[path = "h2/sub.rs"]
mod sub;

#[path = "h2/curl.rs"]
mod curl;
#[path = "h2/h2load.rs"]
mod h2load;
#[path = "h2/hostile.rs"]
mod hostile;
#[path = "h2/transports.rs"]
mod transports;
