//! Request heads the subscribers send, by header profile.
//!
//! `minimal` is what `curl` sends. `browser` is what Chromium sends for `fetch()` (poll, long
//! poll, stream), `EventSource` (SSE) and `new WebSocket()`: the headers, order and case that
//! `server/tests/browser.rs` captured from a real headless Chromium into
//! `loadgen/fixtures/browser_headers.json` (client hints, `sec-fetch-*`, a typical 6-cookie
//! `Cookie`), with Host, Origin and Referer naming the target and `HeadlessChrome/` written
//! as a desktop Chromium's `Chrome/`. That is what the classic "871 bytes of headers per
//! poll" figure is tested with.
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

/// The captured Chromium request headers, by request kind.
#[derive(Debug, serde::Deserialize)]
struct BrowserHeaders {
    fetch: Vec<(String, String)>,
    eventsource: Vec<(String, String)>,
    websocket: Vec<(String, String)>,
}

fn browser_headers() -> &'static BrowserHeaders {
    static H: std::sync::OnceLock<BrowserHeaders> = std::sync::OnceLock::new();
    H.get_or_init(|| {
        serde_json::from_str(include_str!("../fixtures/browser_headers.json"))
            .expect("loadgen/fixtures/browser_headers.json is valid")
    })
}

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
    for (k, v) in request_fields(host, profile, kind, keep_alive, extra) {
        h.push_str(&k);
        h.push_str(": ");
        h.push_str(&v);
        h.push_str("\r\n");
    }
    h.push_str("\r\n");
    h.into_bytes()
}

/// Header fields an HTTP/1.1 request carries that HTTP/2 forbids (RFC 9113 §8.2.2) or
/// replaces with a pseudo-header (`Host` becomes `:authority`), and the WebSocket key an
/// extended CONNECT does not use (RFC 8441 §5).
const NOT_ON_H2: &[&str] = &[
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "sec-websocket-key",
];

/// The fields of the same request on HTTP/2, after the pseudo-headers the HTTP/2 client adds
/// (`:method`, `:scheme`, `:authority`, `:path`): the HTTP/1.1 fields in their order, names in
/// lowercase (RFC 9113 §8.2), without the connection-specific ones. That is what Chromium
/// sends on h2 for the same `fetch()` or `EventSource`, and for `new WebSocket()` by extended
/// CONNECT (RFC 8441).
pub fn h2_request_fields(
    host: &str,
    profile: HeaderProfile,
    kind: RequestKind,
    extra: &[(&str, &str)],
) -> Vec<(String, String)> {
    request_fields(host, profile, kind, true, extra)
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .filter(|(k, _)| !NOT_ON_H2.contains(&k.as_str()))
        .collect()
}

/// The header fields of one request, in order (`Host` first). `extra` headers go last.
fn request_fields(
    host: &str,
    profile: HeaderProfile,
    kind: RequestKind,
    keep_alive: bool,
    extra: &[(&str, &str)],
) -> Vec<(String, String)> {
    let mut h: Vec<(String, String)> = Vec::with_capacity(24);
    let mut add = |k: &str, v: &str| h.push((k.to_string(), v.to_string()));
    add("Host", host);
    let origin = format!("http://{host}");
    let referer = format!("http://{host}/");
    let no_capture: &[(String, String)] = &[];
    // As `curl -H 'Accept: ...'`: an extra Accept replaces curl's (nchan needs
    // `text/event-stream` for SSE).
    let accept = extra
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("accept"))
        .map_or("*/*", |(_, v)| *v);
    let captured = match (profile, kind) {
        (HeaderProfile::Minimal, RequestKind::WebSocket) => {
            add("User-Agent", "curl/8.11.1");
            add("Accept", accept);
            no_capture
        }
        (HeaderProfile::Minimal, _) => {
            add("User-Agent", "curl/8.11.1");
            add("Accept", accept);
            if !keep_alive {
                add("Connection", "close");
            }
            no_capture
        }
        (HeaderProfile::Browser, kind) => {
            let captured = match kind {
                RequestKind::Fetch => &browser_headers().fetch,
                RequestKind::EventSource => &browser_headers().eventsource,
                RequestKind::WebSocket => &browser_headers().websocket,
            };
            for (name, value) in captured {
                if let Some((_, v)) = extra.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)) {
                    add(name, v);
                    continue;
                }
                match name.to_ascii_lowercase().as_str() {
                    "host" => {}
                    "origin" => add(name, &origin),
                    "referer" => add(name, &referer),
                    "user-agent" => add(name, &value.replace("HeadlessChrome/", "Chrome/")),
                    "connection" if kind != RequestKind::WebSocket && !keep_alive => {
                        add(name, "close")
                    }
                    _ => add(name, value),
                }
            }
            captured
        }
    };
    // Extras the capture already placed went in its order, with our values.
    for (k, v) in extra {
        let placed = profile == HeaderProfile::Minimal && k.eq_ignore_ascii_case("accept");
        if !placed && !captured.iter().any(|(n, _)| n.eq_ignore_ascii_case(k)) {
            add(k, v);
        }
    }
    h
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

    #[test]
    fn an_extra_accept_replaces_the_profiles() {
        for profile in [HeaderProfile::Minimal, HeaderProfile::Browser] {
            let head = request_head(
                "GET",
                "/sub/sse/t",
                "h",
                profile,
                RequestKind::Fetch,
                true,
                &[("Accept", "text/event-stream")],
            );
            let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
            assert_eq!(head.matches("\r\naccept:").count(), 1, "{head}");
            assert!(head.contains("\r\naccept: text/event-stream\r\n"), "{head}");
        }
    }

    #[test]
    fn browser_heads_match_the_captured_chromium_sizes() {
        // The capture ran on port 45463 with these paths; desktop "Chrome/" is 8 bytes
        // shorter than the captured "HeadlessChrome/".
        let v: serde_json::Value =
            serde_json::from_str(include_str!("../fixtures/browser_headers.json")).unwrap();
        let host = "127.0.0.1:45463";
        for (kind, key, path, extra) in [
            (RequestKind::Fetch, "fetch", "/poll/ticker?since=0", vec![]),
            (
                RequestKind::EventSource,
                "eventsource",
                "/sse/ticker?since=0",
                vec![],
            ),
            (
                RequestKind::WebSocket,
                "websocket",
                "/ws/ticker?since=0",
                vec![
                    ("Upgrade", "websocket"),
                    ("Connection", "Upgrade"),
                    ("Sec-WebSocket-Version", "13"),
                    ("Sec-WebSocket-Key", "e2zl164D1iAqkGjalnooHQ=="),
                ],
            ),
        ] {
            let head = request_head(
                "GET",
                path,
                host,
                HeaderProfile::Browser,
                kind,
                true,
                &extra,
            );
            let captured = v["request_head_bytes"][key].as_u64().unwrap() as usize;
            assert_eq!(
                head.len() + 8,
                captured,
                "{key}: {}",
                String::from_utf8_lossy(&head)
            );
        }
    }

    #[test]
    fn h2_fields_are_the_h1_fields_lowercased_without_connection_ones() {
        for profile in [HeaderProfile::Minimal, HeaderProfile::Browser] {
            let h1 = request_fields("h:1", profile, RequestKind::Fetch, true, &[]);
            let h2 = h2_request_fields("h:1", profile, RequestKind::Fetch, &[]);
            assert_eq!(
                h2.len(),
                h1.len() - 1 - usize::from(profile == HeaderProfile::Browser)
            );
            assert!(h2.iter().all(|(k, _)| *k == k.to_ascii_lowercase()));
            assert!(!h2.iter().any(|(k, _)| k == "host" || k == "connection"));
            let ua = |f: &[(String, String)]| {
                f.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("user-agent"))
                    .map(|(_, v)| v.clone())
            };
            assert_eq!(ua(&h1), ua(&h2), "{profile:?}: same values");
        }
    }
}
