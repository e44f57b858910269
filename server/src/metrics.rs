//! Per-transport counters and `GET /metrics` in the Prometheus text format.
//!
//! ```text
//! pushlab_bytes_written_total{transport="ws"} 123456
//! pushlab_open_connections{transport="sse"} 1000
//! process_cpu_seconds_total 1.250321
//! process_resident_memory_bytes 21413888
//! pushlab_heap_bytes 5242880
//! pushlab_socket_kernel_bytes{transport="ws"} 1310720
//! ```
//!
//! Under TLS the wire counters above sit on the TCP socket, below TLS; the plaintext counters
//! (`pushlab_plaintext_bytes_{read,written}_total`) sit above it and count what HTTP read and
//! wrote. On a cleartext connection the two are equal, so TLS's own bytes (handshake records,
//! record headers, AEAD tags) are `pushlab_bytes_read_total - pushlab_plaintext_bytes_read_total`
//! per transport, whatever mix of TLS and cleartext connections the server carries.
//!
//! `pushlab_protocol_requests_total{transport,protocol,tls}` counts routed requests by the
//! HTTP version they came in (`http/1.1`, `h2c` for cleartext HTTP/2, `h2` over TLS), so a
//! browser test can see which protocol each transport really used (a WebSocket over HTTP/2 is
//! an extended CONNECT, RFC 8441); `pushlab_protocol_connections_total{protocol,tls}` counts
//! connections by the protocol of their first request.
//!
//! ```text
//! pushlab_plaintext_bytes_written_total{transport="sse"} 120012
//! pushlab_protocol_requests_total{transport="ws",protocol="h2",tls="on"} 1
//! ```
//!
//! CPU, heap and kernel socket memory come from [`crate::usage`] (getrusage, the counting
//! allocator, `SO_MEMINFO` of every registered connection socket).
//!
//! Byte counters are fed by the counting wrapper around each accepted socket ([`ConnCounter`]):
//! a connection's bytes belong to the transport of the request it carries, so they equal what
//! a client counts on its own socket. Bytes read before the first request is routed are held
//! back and credited once the route is known; a connection that never carries a routed request
//! (a bad request, /metrics) is credited to `other`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, Weak};

use pushlab_proto::{IoCounter, Transport};

/// Where a connection's bytes are credited: one slot per transport, then publish, then other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    Transport(Transport),
    Publish,
    Other,
}

const SLOTS: usize = 7;
const UNTAGGED: u8 = u8::MAX;

impl Slot {
    fn index(self) -> usize {
        match self {
            Slot::Transport(t) => t.index(),
            Slot::Publish => 5,
            Slot::Other => 6,
        }
    }

    fn label(i: usize) -> &'static str {
        match i {
            0..=4 => Transport::ALL[i].as_str(),
            5 => "publish",
            _ => "other",
        }
    }
}

/// Counters of one slot.
#[derive(Debug, Default)]
pub struct SlotCounters {
    pub open_connections: AtomicI64,
    pub accepted_connections: AtomicU64,
    pub requests: AtomicU64,
    pub empty_responses: AtomicU64,
    pub delivered_messages: AtomicU64,
    pub gap_notices: AtomicU64,
    pub bytes_read: AtomicU64,
    pub bytes_written: AtomicU64,
    /// What TCP sent again on the slot's closed connections (TCP_INFO read just before close).
    pub tcp_retransmitted_segments: AtomicU64,
    pub tcp_retransmitted_bytes: AtomicU64,
    /// Bytes HTTP read above TLS (equal to `bytes_read` on cleartext connections).
    pub plaintext_bytes_read: AtomicU64,
    /// Bytes HTTP wrote above TLS (equal to `bytes_written` on cleartext connections).
    pub plaintext_bytes_written: AtomicU64,
}

/// The HTTP protocol a request came in, as `/metrics` labels it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.0 or 1.1 in cleartext.
    Http1,
    /// HTTP/1.1 over TLS (ALPN `http/1.1`, or none).
    Http1Tls,
    /// HTTP/2 in cleartext with prior knowledge (RFC 9113 §3.3).
    H2c,
    /// HTTP/2 over TLS (ALPN `h2`).
    H2,
}

const PROTOCOLS: usize = 4;

impl Protocol {
    pub const ALL: [Protocol; PROTOCOLS] = [
        Protocol::Http1,
        Protocol::Http1Tls,
        Protocol::H2c,
        Protocol::H2,
    ];

    /// Of a request of `version` on a connection that is (or not) TLS.
    pub fn of(version: http::Version, tls: bool) -> Self {
        match (version == http::Version::HTTP_2, tls) {
            (true, true) => Protocol::H2,
            (true, false) => Protocol::H2c,
            (false, true) => Protocol::Http1Tls,
            (false, false) => Protocol::Http1,
        }
    }

    /// The `protocol` and `tls` labels.
    pub fn labels(self) -> (&'static str, &'static str) {
        match self {
            Protocol::Http1 => ("http/1.1", "off"),
            Protocol::Http1Tls => ("http/1.1", "on"),
            Protocol::H2c => ("h2c", "off"),
            Protocol::H2 => ("h2", "on"),
        }
    }
}

const REJECTIONS: usize = 27;

/// Reasons a request or connection was refused, each counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    ConnectionLimit,
    BadRequest,
    NotFound,
    MethodNotAllowed,
    PayloadTooLarge,
    UpgradeRequired,
    TopicLimit,
    WsMessageTooBig,
    WsProtocol,
    /// Publish without the publish token (401, or close 1008 on a WebSocket).
    Unauthorized,
    /// WebSocket upgrade, publish or preflight from an origin not allowed (403).
    OriginForbidden,
    /// Past `max_connections_per_ip` (503).
    PerIpLimit,
    /// Request head over the size or count limit (431).
    HeaderTooLarge,
    /// Request head not complete in time (slowloris), connection closed.
    HeaderTimeout,
    /// Connection silent for too long, closed.
    IdleTimeout,
    /// WebSocket that answered no ping or took no write in time, closed.
    WsDeadPeer,
    /// Publish past the connection's rate (429; a WebSocket is paused instead).
    PublishRate,
    /// Publish body not received within the header-read timeout (408).
    BodyTimeout,
    /// Invalid UTF-8 in a WebSocket text message or close reason (close 1007).
    WsInvalidUtf8,
    /// A WebSocket message that could not be written (close 1011 where possible).
    WsWriteFailed,
    /// A request head that breaks an RFC 9112 MUST (Host missing, repeated or invalid): 400.
    BadHost,
    /// Publish (503, or WebSocket close 1013) or new topic (503) while the backplane is down.
    BackplaneDown,
    /// A TLS handshake that failed (not TLS, no shared cipher suite or version, bad record).
    TlsHandshake,
    /// An HTTP/2 connection error PROTOCOL_ERROR or worse (RFC 9113 §5.4.1): a bad preface,
    /// a malformed frame, a frame that breaks the state machine; the server sends GOAWAY.
    H2ProtocolError,
    /// HTTP/2 GOAWAY ENHANCE_YOUR_CALM (RFC 9113 §5.4.1): too many streams reset before the
    /// server took them (rapid reset), too many streams the server had to reset, a
    /// CONTINUATION flood.
    H2EnhanceYourCalm,
    /// An HTTP/2 stream past SETTINGS_MAX_CONCURRENT_STREAMS, refused inside h2 with
    /// RST_STREAM REFUSED_STREAM (RFC 9113 §5.1.2); seen on the wire by [`crate::h2watch`].
    H2RefusedStream,
    /// An HTTP/2 stream error h2 raised (RFC 9113 §5.4.2: RST_STREAM PROTOCOL_ERROR,
    /// FLOW_CONTROL_ERROR, STREAM_CLOSED or FRAME_SIZE_ERROR); the connection lives on.
    H2StreamError,
}

impl Rejection {
    pub const ALL: [Rejection; REJECTIONS] = [
        Rejection::ConnectionLimit,
        Rejection::BadRequest,
        Rejection::NotFound,
        Rejection::MethodNotAllowed,
        Rejection::PayloadTooLarge,
        Rejection::UpgradeRequired,
        Rejection::TopicLimit,
        Rejection::WsMessageTooBig,
        Rejection::WsProtocol,
        Rejection::Unauthorized,
        Rejection::OriginForbidden,
        Rejection::PerIpLimit,
        Rejection::HeaderTooLarge,
        Rejection::HeaderTimeout,
        Rejection::IdleTimeout,
        Rejection::WsDeadPeer,
        Rejection::PublishRate,
        Rejection::BodyTimeout,
        Rejection::WsInvalidUtf8,
        Rejection::WsWriteFailed,
        Rejection::BadHost,
        Rejection::BackplaneDown,
        Rejection::TlsHandshake,
        Rejection::H2ProtocolError,
        Rejection::H2EnhanceYourCalm,
        Rejection::H2RefusedStream,
        Rejection::H2StreamError,
    ];

    /// The `reason` label in `pushlab_rejected_total`.
    pub fn label(self) -> &'static str {
        match self {
            Rejection::ConnectionLimit => "connection_limit",
            Rejection::BadRequest => "bad_request",
            Rejection::NotFound => "not_found",
            Rejection::MethodNotAllowed => "method_not_allowed",
            Rejection::PayloadTooLarge => "payload_too_large",
            Rejection::UpgradeRequired => "upgrade_required",
            Rejection::TopicLimit => "topic_limit",
            Rejection::WsMessageTooBig => "ws_message_too_big",
            Rejection::WsProtocol => "ws_protocol_error",
            Rejection::Unauthorized => "unauthorized",
            Rejection::OriginForbidden => "origin_forbidden",
            Rejection::PerIpLimit => "per_ip_limit",
            Rejection::HeaderTooLarge => "header_too_large",
            Rejection::HeaderTimeout => "header_timeout",
            Rejection::IdleTimeout => "idle_timeout",
            Rejection::WsDeadPeer => "ws_dead_peer",
            Rejection::PublishRate => "publish_rate",
            Rejection::BodyTimeout => "body_timeout",
            Rejection::WsInvalidUtf8 => "ws_invalid_utf8",
            Rejection::WsWriteFailed => "ws_write_failed",
            Rejection::BadHost => "bad_host",
            Rejection::BackplaneDown => "backplane_down",
            Rejection::TlsHandshake => "tls_handshake",
            Rejection::H2ProtocolError => "h2_protocol_error",
            Rejection::H2EnhanceYourCalm => "h2_enhance_your_calm",
            Rejection::H2RefusedStream => "h2_refused_stream",
            Rejection::H2StreamError => "h2_stream_error",
        }
    }
}

/// All of the server's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    slots: [SlotCounters; SLOTS],
    rejections: [AtomicU64; REJECTIONS],
    pub published_messages: AtomicU64,
    /// Routed requests by slot and protocol.
    protocol_requests: [[AtomicU64; PROTOCOLS]; SLOTS],
    /// Connections by the protocol of their first routed request.
    protocol_connections: [AtomicU64; PROTOCOLS],
    /// Open connection sockets whose kernel memory `/metrics` sums, by registration id.
    sockets: Mutex<HashMap<u64, (RawFd, Weak<ConnCounter>)>>,
    next_socket_id: AtomicU64,
}

impl Metrics {
    pub fn slot(&self, slot: Slot) -> &SlotCounters {
        &self.slots[slot.index()]
    }

    pub fn transport(&self, t: Transport) -> &SlotCounters {
        self.slot(Slot::Transport(t))
    }

    /// Counts a routed request on `slot` that came in `protocol` (and its connection, when it
    /// is the connection's first).
    pub fn count_protocol(&self, slot: Slot, protocol: Protocol, first_on_connection: bool) {
        self.protocol_requests[slot.index()][protocol as usize].fetch_add(1, Ordering::Relaxed);
        if first_on_connection {
            self.protocol_connections[protocol as usize].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Routed requests on `slot` that came in `protocol`.
    pub fn protocol_requests(&self, slot: Slot, protocol: Protocol) -> u64 {
        self.protocol_requests[slot.index()][protocol as usize].load(Ordering::Relaxed)
    }

    /// Connections whose first routed request came in `protocol`.
    pub fn protocol_connections(&self, protocol: Protocol) -> u64 {
        self.protocol_connections[protocol as usize].load(Ordering::Relaxed)
    }

    pub fn reject(&self, why: Rejection) {
        self.rejections[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn rejections(&self, why: Rejection) -> u64 {
        self.rejections[why as usize].load(Ordering::Relaxed)
    }

    /// Kernel socket memory per slot, summed over the registered open connections.
    pub fn socket_kernel_bytes(&self) -> [u64; SLOTS] {
        // Upgrade under the lock, measure and drop the strong references after it: the last
        // reference going away runs `ConnCounter::drop`, which takes the lock.
        let live: Vec<(RawFd, Arc<ConnCounter>)> = {
            let sockets = self.sockets.lock().unwrap_or_else(|e| e.into_inner());
            sockets
                .values()
                .filter_map(|(fd, w)| Some((*fd, w.upgrade()?)))
                .collect()
        };
        let mut sums = [0u64; SLOTS];
        for (fd, conn) in &live {
            let slot = conn.slot.load(Ordering::Acquire);
            let i = if slot == UNTAGGED {
                Slot::Other.index()
            } else {
                slot as usize
            };
            sums[i] += crate::usage::socket_kernel_bytes(*fd).unwrap_or(0);
        }
        sums
    }

    fn render_protocols(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP pushlab_protocol_requests_total Requests routed, by the HTTP protocol they came in.\n# TYPE pushlab_protocol_requests_total counter");
        for (i, per) in self.protocol_requests.iter().enumerate() {
            for p in Protocol::ALL {
                let (protocol, tls) = p.labels();
                let n = per[p as usize].load(Ordering::Relaxed);
                let _ = writeln!(out, "pushlab_protocol_requests_total{{transport=\"{}\",protocol=\"{protocol}\",tls=\"{tls}\"}} {n}", Slot::label(i));
            }
        }
        let _ = writeln!(out, "# HELP pushlab_protocol_connections_total Connections, by the HTTP protocol of their first request.\n# TYPE pushlab_protocol_connections_total counter");
        for p in Protocol::ALL {
            let (protocol, tls) = p.labels();
            let n = self.protocol_connections[p as usize].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "pushlab_protocol_connections_total{{protocol=\"{protocol}\",tls=\"{tls}\"}} {n}"
            );
        }
    }

    /// Prometheus text exposition.
    pub fn render(&self, topics: usize) -> String {
        let mut out = String::with_capacity(4096);
        type Get = fn(&SlotCounters) -> i64;
        let families: [(&str, &str, &str, Get); 12] = [
            (
                "pushlab_open_connections",
                "gauge",
                "Connections open now",
                |c| c.open_connections.load(Ordering::Relaxed),
            ),
            (
                "pushlab_accepted_connections_total",
                "counter",
                "Connections accepted",
                |c| c.accepted_connections.load(Ordering::Relaxed) as i64,
            ),
            (
                "pushlab_requests_total",
                "counter",
                "HTTP requests routed",
                |c| c.requests.load(Ordering::Relaxed) as i64,
            ),
            (
                "pushlab_empty_responses_total",
                "counter",
                "Poll and long-poll responses with no message",
                |c| c.empty_responses.load(Ordering::Relaxed) as i64,
            ),
            (
                "pushlab_delivered_messages_total",
                "counter",
                "Messages handed to subscribers",
                |c| c.delivered_messages.load(Ordering::Relaxed) as i64,
            ),
            (
                "pushlab_gap_notices_total",
                "counter",
                "Gap notices sent to subscribers that fell behind",
                |c| c.gap_notices.load(Ordering::Relaxed) as i64,
            ),
            (
                "pushlab_bytes_read_total",
                "counter",
                "Bytes read from client sockets",
                |c| c.bytes_read.load(Ordering::Relaxed) as i64,
            ),
            (
                "pushlab_bytes_written_total",
                "counter",
                "Bytes written to client sockets",
                |c| c.bytes_written.load(Ordering::Relaxed) as i64,
            ),
            (
                "pushlab_tcp_retransmitted_segments_total",
                "counter",
                "TCP segments sent again on closed connections (TCP_INFO tcpi_total_retrans at close)",
                |c| c.tcp_retransmitted_segments.load(Ordering::Relaxed) as i64,
            ),
            (
                "pushlab_tcp_retransmitted_bytes_total",
                "counter",
                "Payload bytes TCP sent again on closed connections (TCP_INFO tcpi_bytes_retrans at close)",
                |c| c.tcp_retransmitted_bytes.load(Ordering::Relaxed) as i64,
            ),
            (
                "pushlab_plaintext_bytes_read_total",
                "counter",
                "Bytes HTTP read from client connections above TLS (equal to pushlab_bytes_read_total in cleartext)",
                |c| c.plaintext_bytes_read.load(Ordering::Relaxed) as i64,
            ),
            (
                "pushlab_plaintext_bytes_written_total",
                "counter",
                "Bytes HTTP wrote to client connections above TLS (equal to pushlab_bytes_written_total in cleartext)",
                |c| c.plaintext_bytes_written.load(Ordering::Relaxed) as i64,
            ),
        ];
        for (name, kind, help, get) in families {
            let _ = writeln!(out, "# HELP {name} {help}.\n# TYPE {name} {kind}");
            for (i, c) in self.slots.iter().enumerate() {
                let _ = writeln!(out, "{name}{{transport=\"{}\"}} {}", Slot::label(i), get(c));
            }
        }
        self.render_protocols(&mut out);
        let _ = writeln!(out, "# HELP pushlab_rejected_total Requests and connections refused, by reason.\n# TYPE pushlab_rejected_total counter");
        for r in Rejection::ALL {
            let _ = writeln!(
                out,
                "pushlab_rejected_total{{reason=\"{}\"}} {}",
                r.label(),
                self.rejections(r)
            );
        }
        let _ = writeln!(
            out,
            "# HELP pushlab_published_messages_total Messages published.\n# TYPE pushlab_published_messages_total counter\npushlab_published_messages_total {}",
            self.published_messages.load(Ordering::Relaxed)
        );
        let _ = writeln!(out, "# HELP pushlab_topics Topics that exist.\n# TYPE pushlab_topics gauge\npushlab_topics {topics}");
        let cpu = crate::usage::process_cpu_seconds();
        let rss = crate::usage::rss_bytes();
        let _ = writeln!(out, "# HELP process_cpu_seconds_total User and system CPU time spent in seconds (getrusage, microseconds).\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {cpu:.6}");
        let _ = writeln!(out, "# HELP process_resident_memory_bytes Resident memory size in bytes.\n# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {rss}");
        if let Some(heap) = crate::usage::heap_bytes() {
            let _ = writeln!(out, "# HELP pushlab_heap_bytes Heap bytes in use (counting allocator).\n# TYPE pushlab_heap_bytes gauge\npushlab_heap_bytes {heap}");
        }
        if let Some(b) = crate::usage::socket_struct_bytes() {
            let _ = writeln!(out, "# HELP pushlab_socket_struct_bytes Kernel objects one TCP connection holds besides its queues (slab object sizes of TCP, sock_inode_cache, filp, dentry, eventpoll_epi).\n# TYPE pushlab_socket_struct_bytes gauge\npushlab_socket_struct_bytes {b}");
        }
        let kernel = self.socket_kernel_bytes();
        let _ = writeln!(out, "# HELP pushlab_socket_kernel_bytes Kernel memory of open connection sockets (SO_MEMINFO: queues, forward allocation, option memory, backlog).\n# TYPE pushlab_socket_kernel_bytes gauge");
        for (i, bytes) in kernel.iter().enumerate() {
            let _ = writeln!(
                out,
                "pushlab_socket_kernel_bytes{{transport=\"{}\"}} {bytes}",
                Slot::label(i)
            );
        }
        // Tasks alive in the server's runtime: a leak of connection tasks shows here (soak).
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let tasks = rt.metrics().num_alive_tasks();
            let _ = writeln!(out, "# HELP pushlab_runtime_alive_tasks Tasks alive in the server's runtime.\n# TYPE pushlab_runtime_alive_tasks gauge\npushlab_runtime_alive_tasks {tasks}");
        }
        out
    }
}

/// One connection's byte counter: credits bytes to the slot of the request it carries.
///
/// Dropped when the last owner (the socket, possibly inside an upgraded WebSocket) goes, which
/// is when the connection is closed: that is where the open gauge goes down.
#[derive(Debug)]
pub struct ConnCounter {
    metrics: Arc<Metrics>,
    slot: AtomicU8,
    /// Bytes counted before the first request was routed, by [`Count`].
    pending: [AtomicU64; 4],
    /// Registration in `Metrics::sockets` (0: not registered).
    socket_id: AtomicU64,
}

impl ConnCounter {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        ConnCounter {
            metrics,
            slot: AtomicU8::new(UNTAGGED),
            pending: Default::default(),
            socket_id: AtomicU64::new(0),
        }
    }

    /// Makes `/metrics` count the kernel memory of socket `fd` under this connection's slot,
    /// until the counter is dropped (which is when the connection closes).
    pub fn register_socket(self: &Arc<Self>, fd: RawFd) {
        let id = self.metrics.next_socket_id.fetch_add(1, Ordering::Relaxed) + 1;
        self.socket_id.store(id, Ordering::Relaxed);
        self.metrics
            .sockets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, (fd, Arc::downgrade(self)));
    }

    /// Credits this connection to `slot` from now on (and its bytes so far, if untagged).
    pub fn tag(&self, slot: Slot) {
        let new = slot.index() as u8;
        let old = self.slot.swap(new, Ordering::AcqRel);
        if old == new {
            return;
        }
        let c = &self.metrics.slots[new as usize];
        c.open_connections.fetch_add(1, Ordering::Relaxed);
        if old == UNTAGGED {
            c.accepted_connections.fetch_add(1, Ordering::Relaxed);
            for what in Count::ALL {
                let n = self.pending[what as usize].swap(0, Ordering::AcqRel);
                what.field(c).fetch_add(n, Ordering::Relaxed);
            }
        } else {
            self.metrics.slots[old as usize]
                .open_connections
                .fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Credits `n` bytes of kind `what` to the connection's slot (or parks them until the
    /// first request is routed).
    pub fn credit(&self, n: u64, what: Count) {
        let slot = self.slot.load(Ordering::Acquire);
        if slot == UNTAGGED {
            let pending = &self.pending[what as usize];
            pending.fetch_add(n, Ordering::AcqRel);
            // Tagged meanwhile: move what we just parked.
            if self.slot.load(Ordering::Acquire) != UNTAGGED {
                let n = pending.swap(0, Ordering::AcqRel);
                self.credit(n, what);
            }
            return;
        }
        what.field(&self.metrics.slots[slot as usize])
            .fetch_add(n, Ordering::Relaxed);
    }
}

/// Which byte counter a count goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Count {
    /// Read from the TCP socket.
    WireRead,
    /// Written to the TCP socket.
    WireWritten,
    /// Read by HTTP (above TLS).
    PlaintextRead,
    /// Written by HTTP (above TLS).
    PlaintextWritten,
}

impl Count {
    const ALL: [Count; 4] = [
        Count::WireRead,
        Count::WireWritten,
        Count::PlaintextRead,
        Count::PlaintextWritten,
    ];

    fn field(self, c: &SlotCounters) -> &AtomicU64 {
        match self {
            Count::WireRead => &c.bytes_read,
            Count::WireWritten => &c.bytes_written,
            Count::PlaintextRead => &c.plaintext_bytes_read,
            Count::PlaintextWritten => &c.plaintext_bytes_written,
        }
    }
}

impl ConnCounter {
    /// Adds what TCP sent again on this connection to its slot (once, as the socket closes).
    fn credit_retransmissions(&self, segments: u64, bytes: u64) {
        let slot = match self.slot.load(Ordering::Acquire) {
            UNTAGGED => Slot::Other.index(),
            s => s as usize,
        };
        let c = &self.metrics.slots[slot];
        c.tcp_retransmitted_segments
            .fetch_add(segments, Ordering::Relaxed);
        c.tcp_retransmitted_bytes
            .fetch_add(bytes, Ordering::Relaxed);
    }
}

/// An accepted TCP socket that, as it closes, adds what TCP sent again on it (from
/// `TCP_INFO`) to its connection's slot: `pushlab_tcp_retransmitted_*_total`. Those are TCP's
/// copies on the wire, beside the byte counters (which count each application byte once).
/// Retransmissions after the close (of the FIN) are not seen.
#[derive(Debug)]
pub struct RetransmissionsOnClose {
    stream: tokio::net::TcpStream,
    counter: Arc<ConnCounter>,
}

impl RetransmissionsOnClose {
    pub fn new(stream: tokio::net::TcpStream, counter: Arc<ConnCounter>) -> Self {
        RetransmissionsOnClose { stream, counter }
    }

    /// [`tokio::net::TcpStream::peek`] (the TLS sniff reads the first byte without taking it).
    pub async fn peek(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.stream.peek(buf).await
    }
}

impl Drop for RetransmissionsOnClose {
    fn drop(&mut self) {
        // The stream is still open here (fields drop after this body).
        let fd = std::os::fd::AsRawFd::as_raw_fd(&self.stream);
        if let Some((segments, bytes)) = crate::usage::tcp_retransmissions(fd) {
            self.counter.credit_retransmissions(segments, bytes);
        }
    }
}

impl tokio::io::AsyncRead for RetransmissionsOnClose {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for RetransmissionsOnClose {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// A cleartext connection: each byte is both wire and plaintext.
impl IoCounter for ConnCounter {
    fn on_read(&self, bytes: &[u8]) {
        let n = bytes.len() as u64;
        self.credit(n, Count::WireRead);
        self.credit(n, Count::PlaintextRead);
    }
    fn on_written(&self, bytes: &[u8]) {
        let n = bytes.len() as u64;
        self.credit(n, Count::WireWritten);
        self.credit(n, Count::PlaintextWritten);
    }
}

impl Drop for ConnCounter {
    fn drop(&mut self) {
        let id = *self.socket_id.get_mut();
        if id != 0 {
            self.metrics
                .sockets
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
        }
        let slot = *self.slot.get_mut();
        if slot == UNTAGGED {
            self.tag(Slot::Other);
        }
        let slot = *self.slot.get_mut() as usize;
        self.metrics.slots[slot]
            .open_connections
            .fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_before_routing_are_credited_to_the_route() {
        let m = Arc::new(Metrics::default());
        let c = ConnCounter::new(m.clone());
        c.on_read(&[0; 100]);
        c.tag(Slot::Transport(Transport::Sse));
        c.on_written(&[0; 50]);
        let s = m.transport(Transport::Sse);
        assert_eq!(s.bytes_read.load(Ordering::Relaxed), 100);
        assert_eq!(s.bytes_written.load(Ordering::Relaxed), 50);
        assert_eq!(s.plaintext_bytes_read.load(Ordering::Relaxed), 100);
        assert_eq!(s.plaintext_bytes_written.load(Ordering::Relaxed), 50);
        assert_eq!(s.open_connections.load(Ordering::Relaxed), 1);
        drop(c);
        assert_eq!(s.open_connections.load(Ordering::Relaxed), 0);
        assert_eq!(s.accepted_connections.load(Ordering::Relaxed), 1);

        let c = ConnCounter::new(m.clone());
        c.on_read(&[0; 7]);
        drop(c);
        let o = m.slot(Slot::Other);
        assert_eq!(o.bytes_read.load(Ordering::Relaxed), 7);
        assert_eq!(o.open_connections.load(Ordering::Relaxed), 0);
        assert!(m
            .render(0)
            .contains("pushlab_bytes_read_total{transport=\"other\"} 7"));
    }

    /// The wrapper reads TCP_INFO before the socket closes and credits the connection's slot
    /// (loopback retransmits nothing, so the figure is 0 but present; the link tests in the
    /// loadgen see it grow under loss).
    #[tokio::test]
    async fn retransmissions_are_read_as_the_socket_closes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&accepted);
        assert_eq!(crate::usage::tcp_retransmissions(fd), Some((0, 0)));
        let m = Arc::new(Metrics::default());
        let c = Arc::new(ConnCounter::new(m.clone()));
        c.tag(Slot::Transport(Transport::Ws));
        drop(RetransmissionsOnClose::new(accepted, c.clone()));
        assert_eq!(crate::usage::tcp_retransmissions(-1), None);
        let text = m.render(0);
        assert!(text.contains("pushlab_tcp_retransmitted_segments_total{transport=\"ws\"} 0"));
        assert!(text.contains("pushlab_tcp_retransmitted_bytes_total{transport=\"ws\"} 0"));
        drop(client);
    }
}
