//! Bounds against hostile or broken clients: who may publish, which web origins may connect,
//! how many connections one address may hold, how big a request head may be, how long a
//! connection may sit silent, and how fast one connection may publish. Every refusal is
//! counted in `/metrics` as `pushlab_rejected_total{reason=...}`.
//!
//! The lab is meant to be pointed at by load tools and browsers, so each bound has a default
//! that never gets in the way of a measurement but keeps one client from holding the server.
//!
//! ```text
//! POST /publish/t  (--publish-token set, no or wrong Bearer)  401 {"error":"..."}  WWW-Authenticate: Bearer
//! GET /ws/t  Origin: https://evil.example                      403 {"error":"origin ... not allowed"}
//! OPTIONS /publish/t  Origin + Access-Control-Request-Method  204 + Access-Control-Allow-* (allowed origin)
//! 17 000 bytes of headers (--max-header-bytes 16384)          431 {"error":"..."}
//! POST /publish/t past --publish-rate on this connection      429 {"error":"..."}  Retry-After: 1
//! the 10 001st connection from one address                    503 {"error":"..."}  Retry-After: 1, closed
//! nothing (or half a request line) for --header-read-timeout  connection closed
//! no byte either way for --idle-timeout, no request running   connection closed
//! ```
//!
//! Origins: with no `--allowed-origins`, a request without `Origin` (curl, load tools) or whose
//! `Origin` names the same host and port as `Host` is allowed; any other origin may not open a
//! WebSocket or publish (a cross-site page must not drive the lab), and gets no CORS headers
//! on reads. An allowed origin is echoed in `Access-Control-Allow-Origin`, never `*`.
//!
//! Publish token: HTTP publishes need `Authorization: Bearer TOKEN`. A WebSocket may subscribe
//! without it; its text frames publish only if the upgrade request carried the token (as
//! `Authorization: Bearer TOKEN`, or `?token=TOKEN` since browsers cannot set headers on a
//! WebSocket); otherwise the first text frame gets close 1008 (policy violation).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Version};
use pushlab_proto::{IoCounter, Transport};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::config::ServerConfig;
use crate::http_util::{self, Body};
use crate::metrics::{ConnCounter, Count, Metrics, Protocol, Rejection, Slot};

/// Counts open connections per client address; past `max` a new one is refused.
#[derive(Debug)]
pub struct PerIpLimiter {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection's place in its address's count, given back on drop.
#[derive(Debug)]
pub struct IpSlot {
    limiter: Arc<PerIpLimiter>,
    ip: IpAddr,
}

impl PerIpLimiter {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(PerIpLimiter {
            max: max.max(1),
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for `ip`, or `None` when it already holds `max` connections.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Option<IpSlot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            limiter: self.clone(),
            ip,
        })
    }

    /// Connections `ip` holds now.
    pub fn open(&self, ip: IpAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.get(&ip).copied().unwrap_or(0)
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = self.limiter.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// A token bucket: `rate_per_s` tokens a second, at most `burst` saved up.
#[derive(Debug)]
pub struct TokenBucket {
    rate_per_s: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket. A rate of 0 means unlimited.
    pub fn new(rate_per_s: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            rate_per_s,
            burst,
            tokens: burst,
            last: Instant::now(),
        }
    }

    /// Takes one token, or says how long until one is there.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        if self.rate_per_s <= 0.0 {
            return Ok(());
        }
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate_per_s).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - self.tokens) / self.rate_per_s,
            ))
        }
    }
}

/// Per-connection state of the bounds: byte counting (forwarded to the metrics' counter),
/// last activity, requests, the publish bucket and the address slot. It lives inside the
/// socket wrapper, so it goes exactly when the socket closes (also after a WebSocket upgrade).
#[derive(Debug)]
pub struct ConnGuard {
    counter: Arc<ConnCounter>,
    born: Instant,
    /// `born` on the coarse clock ([`coarse_ms`]).
    born_ms: u64,
    /// Milliseconds after `born_ms` when a byte last moved.
    last_activity_ms: AtomicU64,
    requests: AtomicU64,
    in_flight: AtomicU64,
    publish: Mutex<TokenBucket>,
    /// TLS runs above the counted socket (set once the handshake record is seen).
    tls: AtomicBool,
    /// The connection's protocol has been counted (on its first routed request).
    protocol_counted: AtomicBool,
    _ip: Option<IpSlot>,
    /// The connection's place under `--max-connections`, held as long as the socket (a
    /// WebSocket outlives the hyper connection that upgraded it).
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// Milliseconds on the kernel's coarse monotonic clock (`CLOCK_MONOTONIC_COARSE`, clock_gettime(2):
/// the time of the last scheduler tick, read from the vDSO without the TSC; 1-4 ms
/// resolution). Idle bounds are seconds long, and a connection notes the time on every read
/// and write: the precise clock there was 1.6 % of the server's CPU per SSE delivery (perf).
fn coarse_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC_COARSE exists on every
    // Linux since 2.6.32 and the call cannot fail with a valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(1000) + ts.tv_nsec as u64 / 1_000_000
}

impl ConnGuard {
    pub fn new(counter: Arc<ConnCounter>, config: &ServerConfig, ip: Option<IpSlot>) -> Self {
        ConnGuard {
            counter,
            born: Instant::now(),
            born_ms: coarse_ms(),
            last_activity_ms: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            publish: Mutex::new(TokenBucket::new(
                config.publish_rate_per_s,
                config.publish_burst,
            )),
            tls: AtomicBool::new(false),
            protocol_counted: AtomicBool::new(false),
            _ip: ip,
            _permit: None,
        }
    }

    /// Holds `permit` until the socket closes.
    pub fn with_permit(mut self, permit: tokio::sync::OwnedSemaphorePermit) -> Self {
        self._permit = Some(permit);
        self
    }

    pub fn counter(&self) -> &Arc<ConnCounter> {
        &self.counter
    }

    /// From now on the socket carries TLS: its bytes are wire bytes only, and HTTP's
    /// plaintext is counted by [`TlsPlaintext`] above TLS.
    pub fn set_tls(&self) {
        self.tls.store(true, Ordering::Release);
    }

    pub fn is_tls(&self) -> bool {
        self.tls.load(Ordering::Acquire)
    }

    /// The protocol of a request of `version` on this connection, and whether it is the
    /// first one counted (so the connection is counted once).
    pub fn protocol_of(&self, version: Version) -> (Protocol, bool) {
        let first = !self.protocol_counted.swap(true, Ordering::AcqRel);
        (Protocol::of(version, self.is_tls()), first)
    }

    /// Notes that a byte moved now (on every read and write of the socket).
    fn touch(&self) {
        let ms = coarse_ms().saturating_sub(self.born_ms);
        // Most touches fall in the same clock tick: a load, and a store only when it moved.
        if ms > self.last_activity_ms.load(Ordering::Relaxed) {
            self.last_activity_ms.fetch_max(ms, Ordering::Relaxed);
        }
    }

    /// Time since a byte last moved either way (to the coarse clock's tick, a few ms).
    pub fn idle_for(&self) -> Duration {
        let last = self.last_activity_ms.load(Ordering::Relaxed);
        Duration::from_millis(
            coarse_ms()
                .saturating_sub(self.born_ms)
                .saturating_sub(last),
        )
    }

    /// Marks a request as being handled until the returned guard drops.
    pub fn request(self: &Arc<Self>) -> InFlight {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.touch();
        InFlight(self.clone())
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Takes a publish token from this connection's bucket.
    pub fn take_publish(&self) -> Result<(), Duration> {
        let mut b = self.publish.lock().unwrap_or_else(|e| e.into_inner());
        b.try_take(Instant::now())
    }
}

/// The TCP socket's bytes (on a cleartext connection also HTTP's plaintext).
impl IoCounter for ConnGuard {
    fn on_read(&self, bytes: &[u8]) {
        self.touch();
        if self.is_tls() {
            self.counter.credit(bytes.len() as u64, Count::WireRead)
        } else {
            self.counter.on_read(bytes)
        }
    }
    fn on_written(&self, bytes: &[u8]) {
        self.touch();
        if self.is_tls() {
            self.counter.credit(bytes.len() as u64, Count::WireWritten)
        } else {
            self.counter.on_written(bytes)
        }
    }
}

/// Counts what HTTP reads and writes above TLS, into the connection's plaintext counters.
#[derive(Debug, Clone)]
pub struct TlsPlaintext(pub Arc<ConnGuard>);

impl IoCounter for TlsPlaintext {
    fn on_read(&self, bytes: &[u8]) {
        self.0
            .counter
            .credit(bytes.len() as u64, Count::PlaintextRead)
    }
    fn on_written(&self, bytes: &[u8]) {
        self.0
            .counter
            .credit(bytes.len() as u64, Count::PlaintextWritten)
    }
}

/// A request being handled; a connection with one is never idle.
#[derive(Debug)]
pub struct InFlight(Arc<ConnGuard>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Completes with the reason when a connection must be cut: no request routed within
/// `header_timeout` of the accept (a client that sends nothing, or stalls inside the first
/// bytes where HTTP/1 and HTTP/2 are told apart and hyper's own header timer has not started),
/// or no byte moved either way for `idle_timeout` while no request was being handled (idle
/// HTTP/2, a streaming reader that stopped reading).
pub async fn watchdog(
    g: &ConnGuard,
    header_timeout: Duration,
    idle_timeout: Duration,
) -> Rejection {
    tokio::time::sleep_until(g.born + header_timeout).await;
    if g.requests() == 0 {
        return Rejection::HeaderTimeout;
    }
    loop {
        let idle = g.idle_for();
        if idle >= idle_timeout && g.in_flight.load(Ordering::Relaxed) == 0 {
            return Rejection::IdleTimeout;
        }
        let wait = idle_timeout
            .saturating_sub(idle)
            .max(Duration::from_millis(100));
        tokio::time::sleep(wait).await;
    }
}

/// Turns the error a hyper connection ended with into the bound it hit, if any.
pub fn connection_error(err: &(dyn std::error::Error + 'static)) -> Option<Rejection> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(h2) = e.downcast_ref::<h2::Error>() {
            return h2_rejection(h2);
        }
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            tracing::debug!("tls: {tls}");
            return Some(Rejection::TlsHandshake);
        }
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            let inner = std::error::Error::source(h);
            if inner.is_some_and(|s| s.is::<h2::Error>()) {
                cur = inner;
                continue;
            }
            if h.is_timeout() {
                return Some(Rejection::HeaderTimeout);
            }
            if h.is_parse_too_large() {
                return Some(Rejection::HeaderTooLarge);
            }
            if h.is_parse() {
                return Some(Rejection::BadRequest);
            }
            return None;
        }
        cur = e.source();
    }
    None
}

/// The refusal an HTTP/2 connection error stands for: one the server raised (a GOAWAY it sent,
/// RFC 9113 §5.4.1), not the peer's own GOAWAY or a reset socket.
fn h2_rejection(e: &h2::Error) -> Option<Rejection> {
    if e.is_remote() || e.is_io() {
        return None;
    }
    match e.reason()? {
        h2::Reason::NO_ERROR | h2::Reason::CANCEL => None,
        h2::Reason::ENHANCE_YOUR_CALM => Some(Rejection::H2EnhanceYourCalm),
        _ => Some(Rejection::H2ProtocolError),
    }
}

/// Answers a connection refused before HTTP starts (`status_line` like `503 Service
/// Unavailable`) with a JSON reason, then closes it.
pub async fn refuse(mut stream: TcpStream, status_line: &str, reason: &str) {
    let body = serde_json::json!({ "error": reason }).to_string();
    let response = format!(
        "HTTP/1.1 {status_line}\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// What the Origin header says about a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OriginVerdict {
    /// No Origin: not a browser's cross-origin request (curl, load tools, same-origin GET).
    Absent,
    /// Allowed; echoed in `Access-Control-Allow-Origin`.
    Allowed(HeaderValue),
    Forbidden(String),
}

fn host_of_origin(origin: &str) -> Option<&str> {
    let rest = origin.split_once("://")?.1;
    Some(rest.trim_end_matches('/'))
}

/// Judges the request's Origin against `--allowed-origins` (or same-origin by default).
pub fn origin_verdict<B>(req: &Request<B>, config: &ServerConfig) -> OriginVerdict {
    let Some(value) = req.headers().get(header::ORIGIN) else {
        return OriginVerdict::Absent;
    };
    let Ok(origin) = value.to_str() else {
        return OriginVerdict::Forbidden(String::from_utf8_lossy(value.as_bytes()).into_owned());
    };
    let shown = || origin.chars().take(80).collect::<String>();
    let allowed = match &config.allowed_origins {
        Some(list) => list.iter().any(|a| {
            a == "*"
                || a.trim_end_matches('/')
                    .eq_ignore_ascii_case(origin.trim_end_matches('/'))
        }),
        None => {
            // RFC 9112 §3.2.2: with an absolute-form target the target's authority counts,
            // not Host (and `check_host` has made sure there is at most one Host).
            let host = req.uri().authority().map(|a| a.as_str()).or_else(|| {
                req.headers()
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
            });
            match (host_of_origin(origin), host) {
                (Some(o), Some(h)) => o.eq_ignore_ascii_case(h),
                _ => false,
            }
        }
    };
    if allowed {
        OriginVerdict::Allowed(value.clone())
    } else {
        OriginVerdict::Forbidden(shown())
    }
}

/// Compares without an early exit, so the token cannot be guessed byte by byte from timing.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let v = headers.get(header::AUTHORIZATION)?.as_bytes();
    let scheme = v.get(..7)?;
    scheme
        .eq_ignore_ascii_case(b"bearer ")
        .then(|| v[7..].trim_ascii())
}

fn query_token(query: Option<&str>) -> Option<&str> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
}

/// Whether a request may publish: no token configured, or it carries the right one (as a
/// Bearer header; with `allow_query`, also as `?token=`).
pub fn may_publish<B>(req: &Request<B>, config: &ServerConfig, allow_query: bool) -> bool {
    let Some(token) = &config.publish_token else {
        return true;
    };
    if bearer(req.headers()).is_some_and(|b| same_secret(b, token.as_bytes())) {
        return true;
    }
    allow_query
        && query_token(req.uri().query())
            .is_some_and(|t| same_secret(t.as_bytes(), token.as_bytes()))
}

/// Checks the Host header field (RFC 9112 §3.2): an HTTP/1.1 request without one, any request
/// with more than one, or one whose value is not `uri-host [":" port]` is answered 400.
/// HTTP/2 carries the authority in `:authority` instead, so Host may be absent there.
pub fn check_host<B>(req: &Request<B>) -> Result<(), &'static str> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let (first, second) = (hosts.next(), hosts.next());
    match (first, second) {
        (_, Some(_)) => Err("more than one Host header field (RFC 9112 §3.2)"),
        (None, None) if req.version() == Version::HTTP_11 => {
            Err("an HTTP/1.1 request needs a Host header field (RFC 9112 §3.2)")
        }
        (None, None) => Ok(()),
        (Some(v), None) if v.is_empty() || valid_host(v.as_bytes()) => Ok(()),
        (Some(_), None) => Err("Host is not a valid host[:port] (RFC 9112 §3.2, RFC 3986 §3.2)"),
    }
}

/// `uri-host [":" port]` (RFC 3986 §3.2.2-3): a reg-name, IPv4 or bracketed IPv6 literal,
/// with no userinfo.
fn valid_host(v: &[u8]) -> bool {
    let Ok(s) = std::str::from_utf8(v) else {
        return false;
    };
    if !s.is_ascii() || s.contains('@') {
        return false;
    }
    let Ok(authority) = s.parse::<http::uri::Authority>() else {
        return false;
    };
    let reg_name_char = |c: u8| c.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%".contains(&c);
    let host = authority.host();
    let host_ok = if host.starts_with('[') {
        host.ends_with(']')
            && host[1..host.len() - 1]
                .parse::<std::net::Ipv6Addr>()
                .is_ok()
    } else {
        !host.is_empty() && host.bytes().all(reg_name_char)
    };
    // What follows the host: nothing, or ":" and digits (an empty port is allowed).
    let rest = &s[host.len()..];
    let port_ok = rest.is_empty()
        || rest
            .strip_prefix(':')
            .is_some_and(|p| p.bytes().all(|c| c.is_ascii_digit()));
    host_ok && port_ok
}

/// Checks a request head against `--max-header-bytes` and `--max-headers`.
pub fn check_head<B>(req: &Request<B>, config: &ServerConfig) -> Result<(), String> {
    let h = req.headers();
    if h.len() > config.max_headers {
        return Err(format!(
            "{} header fields; at most {} allowed",
            h.len(),
            config.max_headers
        ));
    }
    let uri = req.uri();
    let bytes: usize = uri.path().len()
        + uri.query().map_or(0, str::len)
        + h.iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 4)
            .sum::<usize>();
    if bytes > config.max_header_bytes {
        return Err(format!(
            "request head of about {bytes} bytes; at most {} allowed",
            config.max_header_bytes
        ));
    }
    Ok(())
}

/// What [`admit`] decided.
#[derive(Debug)]
pub enum Admission {
    /// Go on; echo this origin in the CORS headers, if any.
    Pass(Option<HeaderValue>),
    /// Answer with this response instead (a refusal, or a CORS preflight).
    Answer(Response<Body>),
}

fn refused(metrics: &Metrics, why: Rejection, status: StatusCode, reason: String) -> Admission {
    metrics.reject(why);
    Admission::Answer(http_util::error(status, reason))
}

/// Applies the request-level bounds before routing: head size (431), CORS preflight (204 or
/// 403), origin of WebSocket upgrades and publishes (403), the publish token (401) and the
/// connection's publish rate (429).
pub fn admit<B>(
    req: &Request<B>,
    config: &ServerConfig,
    metrics: &Metrics,
    slot: Slot,
    conn: &ConnGuard,
) -> Admission {
    if let Err(reason) = check_host(req) {
        return refused(
            metrics,
            Rejection::BadHost,
            StatusCode::BAD_REQUEST,
            reason.into(),
        );
    }
    let target_bytes = req.uri().path().len() + req.uri().query().map_or(0, |q| q.len() + 1);
    if target_bytes > config.max_header_bytes {
        return refused(
            metrics,
            Rejection::HeaderTooLarge,
            StatusCode::URI_TOO_LONG,
            format!(
                "request-target of {target_bytes} bytes; at most {} (RFC 9112 §3: 414)",
                config.max_header_bytes
            ),
        );
    }
    if let Err(reason) = check_head(req, config) {
        return refused(
            metrics,
            Rejection::HeaderTooLarge,
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            reason,
        );
    }
    let origin = origin_verdict(req, config);
    if req.method() == Method::OPTIONS && origin != OriginVerdict::Absent {
        return match origin {
            OriginVerdict::Allowed(o) => Admission::Answer(preflight(o)),
            OriginVerdict::Forbidden(o) => refused(
                metrics,
                Rejection::OriginForbidden,
                StatusCode::FORBIDDEN,
                format!("origin {o:?} is not allowed here (see --allowed-origins)"),
            ),
            OriginVerdict::Absent => unreachable!(),
        };
    }
    // Changing the ticker's rate is publishing too.
    let control =
        req.uri().path() == "/ticker" && !matches!(*req.method(), Method::GET | Method::HEAD);
    let guarded = control
        || req.uri().path() == "/echo"
        || matches!(slot, Slot::Publish | Slot::Transport(Transport::Ws));
    if let (true, OriginVerdict::Forbidden(o)) = (guarded, &origin) {
        return refused(
            metrics,
            Rejection::OriginForbidden,
            StatusCode::FORBIDDEN,
            format!(
                "origin {o:?} may not publish or open a WebSocket here (see --allowed-origins)"
            ),
        );
    }
    if control && !may_publish(req, config, false) {
        return unauthorized(metrics);
    }
    if slot == Slot::Publish && req.method() == Method::POST {
        if !may_publish(req, config, false) {
            return unauthorized(metrics);
        }
        if let Err(wait) = conn.take_publish() {
            metrics.reject(Rejection::PublishRate);
            let mut r = http_util::error(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "publish rate of this connection is over {} messages/s; slow down",
                    config.publish_rate_per_s
                ),
            );
            let secs = wait.as_secs().max(1).to_string();
            r.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_str(&secs).expect("digits"),
            );
            return Admission::Answer(r);
        }
    }
    match origin {
        OriginVerdict::Allowed(o) => Admission::Pass(Some(o)),
        _ => Admission::Pass(None),
    }
}

fn unauthorized(metrics: &Metrics) -> Admission {
    metrics.reject(Rejection::Unauthorized);
    let mut r = http_util::error(
        StatusCode::UNAUTHORIZED,
        "publishing needs Authorization: Bearer <publish token>",
    );
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    Admission::Answer(r)
}

fn preflight(origin: HeaderValue) -> Response<Body> {
    let mut r = Response::new(http_util::full(""));
    *r.status_mut() = StatusCode::NO_CONTENT;
    let h = r.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type, last-event-id"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    h.insert(header::VARY, HeaderValue::from_static("origin"));
    r
}

/// Adds the CORS headers for an allowed origin to a response.
pub fn decorate(response: &mut Response<Body>, origin: Option<HeaderValue>) {
    if let Some(o) = origin {
        let h = response.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
        h.append(header::VARY, HeaderValue::from_static("origin"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)], uri: &str) -> Request<()> {
        let mut b = Request::builder().uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn origins_default_to_same_origin() {
        let cfg = ServerConfig::default();
        let same = req(
            &[
                ("host", "127.0.0.1:8080"),
                ("origin", "http://127.0.0.1:8080"),
            ],
            "/ws/t",
        );
        assert!(matches!(
            origin_verdict(&same, &cfg),
            OriginVerdict::Allowed(_)
        ));
        let other = req(
            &[
                ("host", "127.0.0.1:8080"),
                ("origin", "https://evil.example"),
            ],
            "/ws/t",
        );
        assert!(matches!(
            origin_verdict(&other, &cfg),
            OriginVerdict::Forbidden(_)
        ));
        let null = req(&[("host", "a"), ("origin", "null")], "/");
        assert!(matches!(
            origin_verdict(&null, &cfg),
            OriginVerdict::Forbidden(_)
        ));
        assert_eq!(origin_verdict(&req(&[], "/"), &cfg), OriginVerdict::Absent);
        let listed = ServerConfig {
            allowed_origins: Some(vec!["https://lab.example".into()]),
            ..ServerConfig::default()
        };
        let ok = req(&[("host", "x"), ("origin", "https://LAB.example")], "/");
        assert!(matches!(
            origin_verdict(&ok, &listed),
            OriginVerdict::Allowed(_)
        ));
        assert!(matches!(
            origin_verdict(&same, &listed),
            OriginVerdict::Forbidden(_)
        ));
        // RFC 9112 §3.2.2: an absolute-form target's authority counts, not Host.
        let absolute = req(
            &[
                ("host", "evil.example"),
                ("origin", "http://127.0.0.1:8080"),
            ],
            "http://127.0.0.1:8080/ws/t",
        );
        assert!(matches!(
            origin_verdict(&absolute, &cfg),
            OriginVerdict::Allowed(_)
        ));
    }

    #[test]
    fn tokens() {
        let cfg = ServerConfig {
            publish_token: Some("s3cret".into()),
            ..ServerConfig::default()
        };
        assert!(may_publish(
            &req(&[("authorization", "Bearer s3cret")], "/"),
            &cfg,
            false
        ));
        assert!(may_publish(
            &req(&[("authorization", "bearer  s3cret ")], "/"),
            &cfg,
            false
        ));
        assert!(!may_publish(
            &req(&[("authorization", "Bearer s3cre")], "/"),
            &cfg,
            false
        ));
        assert!(!may_publish(
            &req(&[("authorization", "Basic s3cret")], "/"),
            &cfg,
            false
        ));
        assert!(!may_publish(&req(&[], "/p?token=s3cret"), &cfg, false));
        assert!(may_publish(
            &req(&[], "/p?since=1&token=s3cret"),
            &cfg,
            true
        ));
        assert!(may_publish(&req(&[], "/"), &ServerConfig::default(), false));
    }

    #[test]
    fn bucket_refills_at_its_rate() {
        let mut b = TokenBucket::new(10.0, 2);
        let t0 = Instant::now();
        assert!(b.try_take(t0).is_ok());
        assert!(b.try_take(t0).is_ok());
        let wait = b.try_take(t0).unwrap_err();
        assert!(wait <= Duration::from_millis(100));
        assert!(b.try_take(t0 + Duration::from_millis(100)).is_ok());
        let mut free = TokenBucket::new(0.0, 1);
        assert!((0..1000).all(|_| free.try_take(t0).is_ok()));
    }

    #[test]
    fn per_ip_slots_are_given_back() {
        let l = PerIpLimiter::new(2);
        let ip: IpAddr = "127.0.0.9".parse().unwrap();
        let a = l.try_acquire(ip).unwrap();
        let _b = l.try_acquire(ip).unwrap();
        assert!(l.try_acquire(ip).is_none());
        assert!(l.try_acquire("127.0.0.10".parse().unwrap()).is_some());
        drop(a);
        assert_eq!(l.open(ip), 1);
        assert!(l.try_acquire(ip).is_some());
    }

    #[test]
    fn host_values() {
        for ok in [
            "a",
            "127.0.0.1:8080",
            "[::1]:8080",
            "[::1]",
            "lab.example:",
            "x-y.z",
        ] {
            assert!(valid_host(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "a b", "u@h", "h:http", "[::1", "[zz]:1", "h:1:2", "", "é", "h/p",
        ] {
            assert!(!valid_host(bad.as_bytes()), "{bad}");
        }
        let one = |v: &[(&str, &str)], version| {
            let mut r = req(v, "/");
            *r.version_mut() = version;
            check_host(&r)
        };
        assert!(one(&[("host", "a")], Version::HTTP_11).is_ok());
        assert!(one(&[], Version::HTTP_11).is_err());
        assert!(one(&[], Version::HTTP_10).is_ok());
        assert!(one(&[], Version::HTTP_2).is_ok());
        assert!(one(&[("host", "a"), ("host", "a")], Version::HTTP_10).is_err());
        assert!(one(&[("host", "a b")], Version::HTTP_2).is_err());
    }

    #[test]
    fn h2_and_tls_errors_become_their_refusals() {
        let calm = h2::Error::from(h2::Reason::ENHANCE_YOUR_CALM);
        assert_eq!(connection_error(&calm), Some(Rejection::H2EnhanceYourCalm));
        for reason in [
            h2::Reason::PROTOCOL_ERROR,
            h2::Reason::FRAME_SIZE_ERROR,
            h2::Reason::COMPRESSION_ERROR,
            h2::Reason::FLOW_CONTROL_ERROR,
        ] {
            let e = h2::Error::from(reason);
            assert_eq!(
                connection_error(&e),
                Some(Rejection::H2ProtocolError),
                "{reason:?}"
            );
        }
        assert_eq!(
            connection_error(&h2::Error::from(h2::Reason::NO_ERROR)),
            None
        );
        assert_eq!(connection_error(&h2::Error::from(h2::Reason::CANCEL)), None);
        let tls = rustls::Error::General("bad record".into());
        assert_eq!(connection_error(&tls), Some(Rejection::TlsHandshake));
    }

    #[test]
    fn protocols_are_labelled_by_version_and_tls() {
        assert_eq!(Protocol::of(Version::HTTP_2, true).labels(), ("h2", "on"));
        assert_eq!(
            Protocol::of(Version::HTTP_2, false).labels(),
            ("h2c", "off")
        );
        assert_eq!(
            Protocol::of(Version::HTTP_11, true).labels(),
            ("http/1.1", "on")
        );
        assert_eq!(
            Protocol::of(Version::HTTP_10, false).labels(),
            ("http/1.1", "off")
        );
    }

    #[test]
    fn head_limits() {
        let cfg = ServerConfig {
            max_headers: 3,
            max_header_bytes: 200,
            ..ServerConfig::default()
        };
        assert!(check_head(&req(&[("a", "1"), ("b", "2")], "/"), &cfg).is_ok());
        assert!(check_head(
            &req(&[("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")], "/"),
            &cfg
        )
        .is_err());
        let long = "x".repeat(300);
        assert!(check_head(&req(&[("a", long.as_str())], "/"), &cfg).is_err());
    }
}
