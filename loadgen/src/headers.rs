//! Request heads the subscribers send, by header profile.
//!
//! `minimal` is what `curl` sends. `browser` is what a desktop Chromium 131 on Linux sends for
//! `fetch()` (poll, long poll, stream), `EventSource` (SSE) and `new WebSocket()`, including
//! client hints, `sec-fetch-*`, and a 280-byte cookie (analytics plus a session, a typical
//! size), so the classic "871 bytes of headers per poll" figure can be tested.
//!
//! ```text
//! GET /poll/lab?since=41 HTTP/1.1
//! Host: 127.0.0.1:8080
//! User-Agent: curl/8.11.1
//! Accept: */*
//! ```

use crate::config::HeaderProfile;

/// What kind of request a head is for (browsers send different headers for each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestKind {
    Fetch,
    EventSource,
    WebSocket,
}

const CHROME_UA: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
const CHROME_CH_UA: &str =
    "\"Google Chrome\";v=\"131\", \"Chromium\";v=\"131\", \"Not_A Brand\";v=\"24\"";
/// A cookie of typical size: Google Analytics' two plus a framework session and CSRF token.
const COOKIE: &str = "_ga=GA1.1.1844922157.1731590400; _ga_K2SPJK2C73=GS1.1.1731590400.3.1.1731594000.0.0.0; csrftoken=Xk3vQ9pLmN7rT2wY8zA4bC6dE1fG5hJ0kL9mN3pQ7rS; sessionid=8f2c1e9a7b3d4f6e0a5c2b8d9e1f3a7c; theme=dark; lang=en";

/// Builds one request head (and nothing after it). `extra` headers go last.
pub fn request_head(
    method: &str,
    path: &str,
    host: &str,
    profile: HeaderProfile,
    kind: RequestKind,
    keep_alive: bool,
    extra: &[(&str, &str)],
) -> Vec<u8> {
    let mut h = String::with_capacity(1024);
    h.push_str(method);
    h.push(' ');
    h.push_str(path);
    h.push_str(" HTTP/1.1\r\n");
    let mut add = |k: &str, v: &str| {
        h.push_str(k);
        h.push_str(": ");
        h.push_str(v);
        h.push_str("\r\n");
    };
    add("Host", host);
    let origin = format!("http://{host}");
    let referer = format!("http://{host}/");
    match (profile, kind) {
        (HeaderProfile::Minimal, RequestKind::WebSocket) => {
            add("User-Agent", "curl/8.11.1");
            add("Accept", "*/*");
        }
        (HeaderProfile::Minimal, _) => {
            add("User-Agent", "curl/8.11.1");
            add("Accept", "*/*");
            if !keep_alive {
                add("Connection", "close");
            }
        }
        (HeaderProfile::Browser, RequestKind::WebSocket) => {
            // Upgrade/Connection/Sec-WebSocket-* come from `extra`, in Chrome's order after Host.
            add("Pragma", "no-cache");
            add("Cache-Control", "no-cache");
            add("User-Agent", CHROME_UA);
            add("Origin", &origin);
            add("Accept-Encoding", "gzip, deflate, br, zstd");
            add("Accept-Language", "en-US,en;q=0.9");
            add("Cookie", COOKIE);
        }
        (HeaderProfile::Browser, kind) => {
            add(
                "Connection",
                if keep_alive { "keep-alive" } else { "close" },
            );
            add("sec-ch-ua-platform", "\"Linux\"");
            if kind == RequestKind::EventSource {
                add("Cache-Control", "no-cache");
            }
            add("User-Agent", CHROME_UA);
            add("sec-ch-ua", CHROME_CH_UA);
            add("sec-ch-ua-mobile", "?0");
            add(
                "Accept",
                if kind == RequestKind::EventSource {
                    "text/event-stream"
                } else {
                    "*/*"
                },
            );
            add("Sec-Fetch-Site", "same-origin");
            add("Sec-Fetch-Mode", "cors");
            add("Sec-Fetch-Dest", "empty");
            add("Referer", &referer);
            add("Accept-Encoding", "gzip, deflate, br, zstd");
            add("Accept-Language", "en-US,en;q=0.9");
            add("Cookie", COOKIE);
        }
    }
    for (k, v) in extra {
        add(k, v);
    }
    h.push_str("\r\n");
    h.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_http_and_profiles_differ_in_size() {
        let min = request_head(
            "GET",
            "/poll/t?since=1",
            "127.0.0.1:8080",
            HeaderProfile::Minimal,
            RequestKind::Fetch,
            true,
            &[],
        );
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        assert!(req.parse(&min).unwrap().is_complete());
        assert_eq!(req.path, Some("/poll/t?since=1"));
        let browser = request_head(
            "GET",
            "/poll/t?since=1",
            "127.0.0.1:8080",
            HeaderProfile::Browser,
            RequestKind::Fetch,
            true,
            &[],
        );
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        assert!(req.parse(&browser).unwrap().is_complete());
        assert!(min.len() < 120, "{}", min.len());
        assert!(browser.len() > 700, "{}", browser.len());
        let close = request_head(
            "GET",
            "/",
            "h",
            HeaderProfile::Minimal,
            RequestKind::Fetch,
            false,
            &[],
        );
        assert!(String::from_utf8(close)
            .unwrap()
            .contains("Connection: close\r\n"));
    }
}
