//! # pushlab-server
//!
//! One live feed, served five ways: short polling, long polling, Server-Sent Events, chunked
//! NDJSON streaming and WebSocket, with byte-identical message bodies so that every difference
//! the lab measures is the transport's alone.
//!
//! # Layout
//!
//! - [`serve`] (this file): the accept loop. A connection slot is taken before each accept is
//!   served (past `max_connections` the client gets a 503), each socket is wrapped in a byte
//!   counter and served by hyper (HTTP/1.1 with upgrades, h2c, or either over TLS with a
//!   second counter above TLS), and shutdown drains.
//! - [`tls`]: rustls settings (PEM files or a self-signed certificate), ALPN, the SPKI pin.
//! - [`feed`]: topics, seqs, the history ring, fan-out without copies.
//! - [`backplane`]: where the feed lives: in this process, or shared by replicas through Redis
//!   (`--backplane`).
//! - [`router`]: one `match` on (method, path) that hands off to a transport.
//! - [`transport`]: one file per transport, plus publish.
//! - [`metrics`]: per-transport counters, `/metrics`.
//! - [`guard`]: bounds against hostile clients (token, origins, per-address connections,
//!   head size, slow and idle connections, publish rate), each refusal counted.
//! - [`h2watch`]: the refusals h2 makes on its own (refused streams, stream errors, its 431),
//!   read from the frames the server writes and counted like the rest.
//! - [`page`]: the browser page, compiled in.
//! - `testing` (cargo feature `testing`): the one in-process "server on 127.0.0.1:0" fixture
//!   that every test binary and bench starts.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let config = pushlab_server::ServerConfig::default();
//! pushlab_server::serve(listener, config, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```

pub mod backplane;
pub mod config;
pub mod feed;
pub(crate) mod gate;
pub mod guard;
pub mod h2watch;
pub mod metrics;
pub mod page;
pub mod router;
pub mod tls;
pub mod transport;
pub mod usage;

#[cfg(feature = "testing")]
pub mod testing;

mod http_util;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use pushlab_proto::CountingIo;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::task::TaskTracker;

pub use backplane::BackplaneError;
pub use config::{ConfigError, ServerArgs, ServerConfig};
pub use feed::Feed;
pub use metrics::Metrics;

use metrics::{ConnCounter, Rejection};

/// What every request handler can reach.
#[derive(Debug)]
pub struct Shared {
    pub config: ServerConfig,
    pub feed: Feed,
    pub metrics: Arc<Metrics>,
    /// Flips to `true` when the server starts shutting down.
    pub shutdown: watch::Receiver<bool>,
    /// Tasks that outlive their request (WebSocket sessions), drained on shutdown.
    pub tasks: TaskTracker,
    /// Rate of the built-in ticker on topic `ticker`, messages per second (0: idle). Starts at
    /// `config.tick_rate`; `POST /ticker?rate=R` changes it at run time.
    pub ticker_rate: watch::Sender<f64>,
    /// The Redis backplane the feed is shared through (`--backplane`); `None`: this process
    /// alone holds the feed.
    pub backplane: Option<Arc<backplane::redis::RedisBackplane>>,
}

/// Errors that stop the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("listener: {0}")]
    Listener(#[from] std::io::Error),
    #[error("backplane: {0}")]
    Backplane(#[from] BackplaneError),
}

/// Why a topic cannot be had: the feed's limit, or a backplane that cannot be asked.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error(transparent)]
    Feed(#[from] feed::FeedError),
    #[error(transparent)]
    Backplane(#[from] BackplaneError),
}

/// Serves until `shutdown` completes, then stops accepting, ends every stream cleanly (final
/// chunk, WebSocket close 1001) and returns once connections are done or the grace period
/// (`config.shutdown_grace`) has passed.
pub async fn serve(
    listener: TcpListener,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    let (shared, shutdown_tx) = Shared::connect(config).await?;
    serve_shared(listener, shared, shutdown_tx, shutdown).await
}

impl Shared {
    /// Fresh state for `config` with the feed in this process (`config.backplane` is not
    /// looked at), and the sender that flips [`Shared::shutdown`].
    pub fn new(config: ServerConfig) -> (Arc<Shared>, watch::Sender<bool>) {
        Shared::with_backplane(config, None)
    }

    /// Fresh state for `config`, connected to its backplane if it names one.
    ///
    /// # Errors
    /// [`ServerError::Backplane`] when the backplane's Redis cannot be reached.
    pub async fn connect(
        config: ServerConfig,
    ) -> Result<(Arc<Shared>, watch::Sender<bool>), ServerError> {
        let backplane = match &config.backplane {
            Some(url) => {
                Some(backplane::redis::RedisBackplane::connect(url, config.history).await?)
            }
            None => None,
        };
        Ok(Shared::with_backplane(config, backplane))
    }

    fn with_backplane(
        config: ServerConfig,
        backplane: Option<Arc<backplane::redis::RedisBackplane>>,
    ) -> (Arc<Shared>, watch::Sender<bool>) {
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            feed: Feed::with_budget(config.history, config.max_topics, config.max_retained_bytes),
            metrics: Arc::new(Metrics::default()),
            shutdown: shutdown_rx,
            tasks: TaskTracker::new(),
            ticker_rate: watch::Sender::new(config.tick_rate),
            backplane,
            config,
        });
        (shared, shutdown_tx)
    }

    /// The topic named `name` (already validated), made if new; with a backplane, followed
    /// in Redis from its first use (see [`backplane::redis::RedisBackplane::track`]).
    ///
    /// # Errors
    /// The topic limit, or a backplane that cannot be asked about a new topic.
    pub async fn topic(&self, name: &str) -> Result<Arc<feed::Topic>, TopicError> {
        let topic = self.feed.topic(name)?;
        if let Some(bp) = &self.backplane {
            bp.track(&self.feed, &topic).await?;
        }
        Ok(topic)
    }

    /// Publishes `data` on `topic` and counts it (`pushlab_published_messages_total`): the
    /// one way HTTP publishes, WebSocket text frames and the ticker publish. Its seq; with a
    /// backplane, once Redis holds it (the local subscribers get it from the reader).
    ///
    /// # Errors
    /// [`BackplaneError::Down`] while the backplane cannot take it (never without one).
    pub async fn publish(
        &self,
        topic: &Arc<feed::Topic>,
        data: &str,
    ) -> Result<u64, BackplaneError> {
        let seq = match &self.backplane {
            Some(bp) => bp.publish(&self.feed, topic, data).await?,
            None => self.feed.publish(topic, data).seq(),
        };
        self.metrics
            .published_messages
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(seq)
    }

    /// Waits (at most `limit`) until `topic` holds seq `since`: a cursor from another replica
    /// may be a moment ahead of this one's reader. At once without a backplane.
    pub async fn catch_up(&self, topic: &feed::Topic, since: u64, limit: Duration) {
        if self.backplane.is_none() || topic.latest_seq() >= since {
            return;
        }
        let mut news = topic.subscribe();
        let _ = tokio::time::timeout(limit, news.wait_for(|latest| *latest >= since)).await;
    }
}

/// [`serve`] with state made by the caller (tests and benches inspect `Shared`).
pub async fn serve_shared(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown_tx: watch::Sender<bool>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    if let Ok(addr) = listener.local_addr() {
        if !addr.ip().is_loopback() && shared.config.publish_token.is_none() {
            tracing::warn!(
                "listening on {addr} without --publish-token: anyone who reaches it may publish"
            );
        }
        tracing::info!(
            "pushlab-server {} listening on http://{addr} (ticker {} msg/s)",
            env!("CARGO_PKG_VERSION"),
            shared.config.tick_rate
        );
    }
    if let Some(tls) = &shared.config.tls {
        // One line on stderr, whatever the log filter: a client (or a script) pins this hash.
        eprintln!("{}", tls.banner());
    }
    let limit = Arc::new(Semaphore::new(shared.config.max_connections));
    let connections = TaskTracker::new();
    // Always running (idle at rate 0) so that `POST /ticker?rate=R` can start it.
    connections.spawn(transport::publish::ticker(shared.clone()));
    if let Some(bp) = shared.backplane.clone() {
        let reader_shared = shared.clone();
        connections.spawn(async move {
            let shutdown = reader_shared.shutdown.clone();
            bp.run_reader(&reader_shared.feed, shutdown).await
        });
    }
    let builders = Arc::new(Builders::new(&shared.config));
    let per_ip = guard::PerIpLimiter::new(shared.config.max_connections_per_ip);

    tokio::pin!(shutdown);
    let mut backoff = Duration::from_millis(5);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            res = listener.accept() => match res {
                Ok(x) => { backoff = Duration::from_millis(5); x }
                Err(e) => {
                    // EMFILE and friends: back off rather than spin; the listener stays up.
                    tracing::warn!("accept failed: {e}; retrying in {backoff:?}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            shared.metrics.reject(Rejection::ConnectionLimit);
            connections.spawn(refuse_busy(stream));
            continue;
        };
        let Some(ip_slot) = per_ip.try_acquire(peer.ip()) else {
            shared.metrics.reject(Rejection::PerIpLimit);
            connections.spawn(guard::refuse(
                stream,
                "503 Service Unavailable",
                "too many connections from your address (see --max-connections-per-ip)",
            ));
            continue;
        };
        let shared = shared.clone();
        let builders = builders.clone();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
        connections.spawn(async move {
            let counter = Arc::new(ConnCounter::new(shared.metrics.clone()));
            counter.register_socket(fd);
            let stream = metrics::RetransmissionsOnClose::new(stream, counter.clone());
            let conn = guard::ConnGuard::new(counter, &shared.config, Some(ip_slot));
            // The permit goes with the socket, not this task: an upgraded WebSocket outlives it.
            let conn = Arc::new(conn.with_permit(permit));
            serve_accepted(stream, conn, shared, &builders).await;
        });
    }

    let _ = shutdown_tx.send(true);
    // Streaming subscribers wait on their topic, not on the flag: wake them to read it.
    shared.feed.wake_all();
    listener_closed(listener);
    connections.close();
    shared.tasks.close();
    let grace = shared.config.shutdown_grace;
    let drained = tokio::time::timeout(grace, async {
        connections.wait().await;
        shared.tasks.wait().await;
    })
    .await;
    if drained.is_err() {
        tracing::warn!("shutdown grace of {grace:?} passed with connections still open");
    }
    Ok(())
}

fn listener_closed(listener: TcpListener) {
    drop(listener);
}

/// Applies the server's HTTP/1.1 settings to `$b` (an `http1::Builder` or hyper-util's
/// `Http1Builder`: the same method names on two types, so both get the very same values).
macro_rules! http1_settings {
    ($b:expr, $config:expr) => {
        $b.timer(TokioTimer::new())
            .header_read_timeout($config.header_read_timeout)
            // hyper's own hard limits (431 with an empty body, then close) sit past the
            // router's (431 with a JSON reason; see `guard::check_head`). hyper's header
            // limit is left at its default of 100: setting it makes hyper allocate and fill
            // that many header slots on the heap for every request (12% of poll fan-out CPU
            // in `cargo bench`).
            .max_buf_size($config.max_header_bytes.saturating_mul(4).max(64 * 1024))
    };
}

/// The HTTP settings every connection is served with (the benches serve in-memory connections
/// with the very same): HTTP/1.1 or HTTP/2, told apart by hyper-util from the first bytes.
#[doc(hidden)]
pub fn http_builder(config: &ServerConfig) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    http1_settings!(builder.http1(), config);
    builder
        .http2()
        .timer(TokioTimer::new())
        // RFC 8441: WebSocket over HTTP/2 by extended CONNECT.
        .enable_connect_protocol()
        .max_concurrent_streams(config.h2_max_concurrent_streams)
        // As for HTTP/1.1: the router answers 431 with a JSON reason past
        // `max_header_bytes`; h2 itself answers 431 (and refuses the stream) past this.
        .max_header_list_size(
            u32::try_from(config.max_header_bytes.saturating_mul(4).max(64 * 1024))
                .unwrap_or(u32::MAX),
        )
        // Rapid reset (CVE-2023-44487): streams the client opens and resets before the server
        // takes them; and streams the server must reset for the client's errors. Past either,
        // GOAWAY ENHANCE_YOUR_CALM (counted as `h2_enhance_your_calm`).
        .max_pending_accept_reset_streams(H2_MAX_PENDING_ACCEPT_RESET_STREAMS)
        .max_local_error_reset_streams(H2_MAX_LOCAL_ERROR_RESET_STREAMS)
        // What one stream may queue for sending: a stalled reader stops its stream, not the
        // server's memory.
        .max_send_buf_size(H2_MAX_SEND_BUF_BYTES);
    builder
}

/// The HTTP/1.1 settings of [`http_builder`] on hyper's own HTTP/1 connection builder: what
/// a connection known to speak HTTP/1.1 is served with (see [`Wire::Http1`]).
fn http1_builder(config: &ServerConfig) -> http1::Builder {
    let mut builder = http1::Builder::new();
    http1_settings!(builder, config);
    builder
}

/// The HTTP/2 connection preface (RFC 9113 §3.4): a cleartext connection that starts with it
/// speaks HTTP/2 by prior knowledge.
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Which HTTP a connection speaks, as far as is known before hyper reads it.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// HTTP/1.1 (with upgrades), served by hyper's HTTP/1 connection directly: its first
    /// bytes were seen (peeked, not taken) and are not the HTTP/2 preface, or TLS agreed on
    /// `http/1.1` by ALPN.
    Http1,
    /// HTTP/2 only: TLS agreed on `h2` by ALPN (a bad preface is then an HTTP/2 connection
    /// error, RFC 9113 §3.4, not an HTTP/1 parse error).
    Http2,
    /// Not known yet (the first bytes so far are a prefix of the preface, or none came):
    /// hyper-util reads the first 24 bytes and decides. Its sniff costs an idle HTTP/1.1
    /// connection 8 KiB: hyper's first read then gets only those 24 bytes back, and growing
    /// its 8 KiB read buffer past them doubles it (heaptrack).
    Sniff,
}

impl Wire {
    /// The wire a cleartext connection speaks, from the first bytes peeked off its socket.
    fn of_cleartext(first: &[u8]) -> Wire {
        if !first.is_empty() && !H2_PREFACE.starts_with(first) {
            Wire::Http1
        } else {
            Wire::Sniff
        }
    }

    /// The wire a TLS connection speaks, from the protocol ALPN agreed on.
    fn of_alpn(alpn: Option<&[u8]>) -> Wire {
        match alpn {
            Some(b"h2") => Wire::Http2,
            Some(b"http/1.1") => Wire::Http1,
            _ => Wire::Sniff,
        }
    }
}

/// Streams an HTTP/2 client may open and reset before the server takes them, at once
/// (hyper's default, made explicit).
pub const H2_MAX_PENDING_ACCEPT_RESET_STREAMS: usize = 20;
/// Streams the server may reset for a client's protocol errors on one connection.
pub const H2_MAX_LOCAL_ERROR_RESET_STREAMS: usize = 256;
/// Bytes one HTTP/2 stream may queue for sending (hyper's default is 400 KiB): h2 grants a
/// stream no more send capacity once it has this much queued (it may go over by one write),
/// so a peer that opens `--h2-max-concurrent-streams` (256) streams and reads none makes the
/// server queue about 256 x 64 KiB = 16 MiB (computed from the settings, not measured) until
/// the idle timeout cuts it.
pub const H2_MAX_SEND_BUF_BYTES: usize = 64 * 1024;

/// What a connection is served with: hyper's HTTP/1 builder (a connection known to speak
/// HTTP/1.1), hyper-util's builder (HTTP/1.1 or h2c by the preface; made HTTP/2-only for TLS
/// connections that agreed on `h2`) and the TLS acceptor. The benches serve in-memory
/// connections with the very same.
#[doc(hidden)]
pub struct Builders {
    http1: http1::Builder,
    auto: auto::Builder<TokioExecutor>,
    tls: Option<TlsAcceptor>,
}

impl Builders {
    pub fn new(config: &ServerConfig) -> Self {
        Builders {
            http1: http1_builder(config),
            auto: http_builder(config),
            tls: config
                .tls
                .as_ref()
                .map(|t| TlsAcceptor::from(t.server_config.clone())),
        }
    }
}

/// Serves one accepted TCP connection: cleartext, or TLS when TLS is on and the first byte is
/// a handshake record. The wait for the first bytes (peeked: they tell TLS, HTTP/1.1 and h2c
/// apart without being taken) and the TLS handshake are bounded by the header-read timeout,
/// counted as `header_timeout` when cut and `tls_handshake` when the handshake fails.
async fn serve_accepted(
    stream: metrics::RetransmissionsOnClose,
    conn: Arc<guard::ConnGuard>,
    shared: Arc<Shared>,
    builders: &Builders,
) {
    let cfg = &shared.config;
    let watchdog = guard::watchdog(&conn, cfg.header_read_timeout, cfg.idle_timeout);
    let mut down = shared.shutdown.clone();
    let mut first = [0u8; H2_PREFACE.len()];
    let peeked = tokio::select! {
        n = stream.peek(&mut first) => n.unwrap_or(0),
        why = watchdog => return shared.metrics.reject(why),
        _ = until_down(&mut down) => return,
    };
    let first = &first[..peeked];
    let acceptor = match &builders.tls {
        Some(acceptor) if first.first() == Some(&tls::HANDSHAKE_RECORD) => acceptor,
        _ => {
            let io = CountingIo::new(stream, conn.clone());
            let wire = Wire::of_cleartext(first);
            return serve_guarded(io, conn, shared, builders, wire).await;
        }
    };
    conn.set_tls();
    let watchdog = guard::watchdog(&conn, cfg.header_read_timeout, cfg.idle_timeout);
    // Boxed, like the TLS connection below: a task's future is as large as its largest
    // state, so inline TLS state (rustls' connection, the TLS-wrapped hyper connection) would
    // make every cleartext connection's task carry it too (~8 KiB per connection).
    let handshake = Box::pin(acceptor.accept(CountingIo::new(stream, conn.clone())));
    let started = tokio::select! {
        started = handshake => started,
        why = watchdog => return shared.metrics.reject(why),
        _ = until_down(&mut down) => return,
    };
    match started {
        Ok(tls) => {
            let wire = Wire::of_alpn(tls.get_ref().1.alpn_protocol());
            let io = CountingIo::new(tls, guard::TlsPlaintext(conn.clone()));
            Box::pin(serve_guarded(io, conn, shared, builders, wire)).await
        }
        Err(e) => {
            tracing::debug!("tls handshake: {e}");
            shared.metrics.reject(Rejection::TlsHandshake)
        }
    }
}

/// Serves one accepted HTTP/1.1 connection (what a cleartext connection whose first bytes are
/// not the HTTP/2 preface gets) until it ends or the server shuts down. Generic over the
/// socket so the fan-out benches can run the real stack over an in-memory one.
#[doc(hidden)]
pub async fn serve_connection<S>(stream: S, shared: Arc<Shared>, builders: &Builders)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let counter = Arc::new(ConnCounter::new(shared.metrics.clone()));
    let conn = Arc::new(guard::ConnGuard::new(counter, &shared.config, None));
    let io = CountingIo::new(stream, conn.clone());
    serve_guarded(io, conn, shared, builders, Wire::Http1).await
}

/// [`serve_connection`] with its bounds state made by the caller: `io` is the socket already
/// counted through `conn_guard` (and TLS, if any), the guard is handed to the router with each
/// request, and the connection is cut (and counted) when the guard's watchdog says it is slow
/// or idle.
async fn serve_guarded<S>(
    io: S,
    conn_guard: Arc<guard::ConnGuard>,
    shared: Arc<Shared>,
    builders: &Builders,
    wire: Wire,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    // HTTP/2's own refusals are read from the frames written (h2watch); on a connection known
    // to be HTTP/1.1 the watch turns itself off at the first byte.
    let h2 = matches!(wire, Wire::Http2);
    let io = TokioIo::new(h2watch::H2Watch::new(io, shared.metrics.clone(), h2));
    let svc_shared = shared.clone();
    let svc_guard = conn_guard.clone();
    let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
        router::route(req, svc_shared.clone(), svc_guard.clone())
    });
    match wire {
        Wire::Http1 => {
            let conn = builders.http1.serve_connection(io, service).with_upgrades();
            drive(conn, &conn_guard, &shared).await
        }
        // Boxed so that the HTTP/1.1 path above does not carry these states' size. hyper-util's
        // HTTP/2-only mode is ignored by `serve_connection_with_upgrades`; HTTP/2 needs no
        // HTTP/1 upgrade (its extended CONNECT upgrades inside h2).
        Wire::Http2 => {
            let h2 = builders.auto.clone().http2_only();
            Box::pin(drive(
                h2.serve_connection(io, service),
                &conn_guard,
                &shared,
            ))
            .await
        }
        Wire::Sniff => {
            let conn = builders.auto.serve_connection_with_upgrades(io, service);
            Box::pin(drive(conn, &conn_guard, &shared)).await
        }
    }
}

/// A served connection that can be asked to finish gracefully (hyper's and hyper-util's
/// connection types, each with its own inherent `graceful_shutdown`).
trait Graceful: Future<Output = Result<(), Self::Error>> {
    type Error: Into<Box<dyn std::error::Error + Send + Sync>>;
    fn finish(self: std::pin::Pin<&mut Self>);
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

macro_rules! graceful {
    ($($conn:ident),*) => {$(
        impl<I, S, B> Graceful for auto::$conn<'_, I, S, TokioExecutor>
        where
            Self: Future<Output = Result<(), BoxError>>,
            S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
            B: hyper::body::Body + 'static,
            B::Error: Into<BoxError>,
            I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
            TokioExecutor: auto::HttpServerConnExec<S::Future, B>,
        {
            type Error = BoxError;
            fn finish(self: std::pin::Pin<&mut Self>) {
                self.graceful_shutdown()
            }
        }
    )*};
}
graceful!(Connection, UpgradeableConnection);

impl<I, S, B> Graceful for http1::UpgradeableConnection<I, S>
where
    Self: Future<Output = Result<(), hyper::Error>>,
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    B: hyper::body::Body + 'static,
    B::Error: Into<BoxError>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    type Error = hyper::Error;
    fn finish(self: std::pin::Pin<&mut Self>) {
        self.graceful_shutdown()
    }
}

/// Runs a served connection until it ends, the guard's watchdog cuts it or the server shuts
/// down; counts the bound it hit, if any.
async fn drive(conn: impl Graceful, conn_guard: &guard::ConnGuard, shared: &Shared) {
    tokio::pin!(conn);
    let mut shutdown = shared.shutdown.clone();
    let cfg = &shared.config;
    let watchdog = guard::watchdog(conn_guard, cfg.header_read_timeout, cfg.idle_timeout);
    // The watchdog's timer and the shutdown wait are polled only when one of them fired, not
    // on every wake-up of the connection (every message of a stream): see `gate`.
    let bound = gate::Gated::new(async {
        tokio::select! {
            why = watchdog => Some(why),
            _ = until_down(&mut shutdown) => None,
        }
    });
    tokio::select! {
        biased;
        res = conn.as_mut() => {
            if let Err(e) = res {
                let e: BoxError = e.into();
                // hyper's header timer also ends idle HTTP/1.1 keep-alive connections: after
                // a request, a timeout with no byte moved meanwhile is idleness, not a slow head.
                let idle = conn_guard.requests() > 0
                    && conn_guard.idle_for() >= cfg.header_read_timeout.mul_f32(0.9);
                match guard::connection_error(e.as_ref()) {
                    Some(Rejection::HeaderTimeout) if idle => {
                        shared.metrics.reject(Rejection::IdleTimeout)
                    }
                    Some(why) => shared.metrics.reject(why),
                    None => {}
                }
            }
        }
        bound = bound => match bound {
            Some(why) => shared.metrics.reject(why),
            None => {
                conn.as_mut().finish();
                let _ = conn.await;
            }
        },
    }
}

/// Completes once the server is shutting down (the borrow guard is not held across awaits).
pub async fn until_down(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|down| *down).await;
}

/// Past `max_connections`: a short 503 with Retry-After, then close.
async fn refuse_busy(mut stream: TcpStream) {
    const BODY: &str = r#"{"error":"server at its connection limit; retry later"}"#;
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http1_is_told_from_the_h2_preface_by_the_first_bytes() {
        assert_eq!(Wire::of_cleartext(b"GET /sse/t HTTP/1.1\r\n"), Wire::Http1);
        assert_eq!(Wire::of_cleartext(b"POST /publish/t"), Wire::Http1);
        // "PR" could still be the preface; "PRI * HTTP/1.1" is not.
        assert_eq!(Wire::of_cleartext(b"P"), Wire::Sniff);
        assert_eq!(Wire::of_cleartext(b"PRI * HTTP/2.0\r\n"), Wire::Sniff);
        assert_eq!(Wire::of_cleartext(H2_PREFACE), Wire::Sniff);
        assert_eq!(Wire::of_cleartext(b"PRI * HTTP/1.1\r\n"), Wire::Http1);
        // Nothing came (EOF): hyper-util's path, as before the peek.
        assert_eq!(Wire::of_cleartext(b""), Wire::Sniff);
    }

    #[test]
    fn alpn_decides_the_wire_of_a_tls_connection() {
        assert_eq!(Wire::of_alpn(Some(b"h2")), Wire::Http2);
        assert_eq!(Wire::of_alpn(Some(b"http/1.1")), Wire::Http1);
        assert_eq!(Wire::of_alpn(None), Wire::Sniff);
    }
}
