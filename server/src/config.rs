//! Server settings, with the defaults the lab is measured with.

use std::time::Duration;

/// Everything [`crate::serve`] needs to know. `Default` gives the documented defaults.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Messages kept per topic for resuming subscribers (`--history`).
    pub history: usize,
    /// Most messages in one poll or long-poll batch (`--max-batch`).
    pub max_batch: usize,
    /// How far (in messages) a stream or WebSocket subscriber may fall behind the newest
    /// message before it is moved forward with a gap notice. At most `history`.
    pub max_subscriber_lag: usize,
    /// Built-in ticker on topic `ticker`, messages per second; 0 turns it off.
    pub tick_rate: f64,
    /// Bytes of `data` in each ticker message.
    pub tick_bytes: usize,
    /// Open connections at most; past it new ones get 503 with Retry-After.
    pub max_connections: usize,
    /// Largest publish body or WebSocket message, in bytes (413 / close 1009 past it).
    pub max_message_bytes: usize,
    /// Topics at most (topics are made on first use).
    pub max_topics: usize,
    /// Time a client has to send a whole request head.
    pub header_read_timeout: Duration,
    /// Long-poll hold time when the request names none.
    pub default_longpoll_timeout: Duration,
    /// SSE comment heartbeat interval (also a chunked stream's, as an empty line).
    pub heartbeat_interval: Duration,
    /// How long shutdown waits for streams to end before it drops them.
    pub shutdown_grace: Duration,
    /// Bearer token that publishing needs (`--publish-token`); `None`: anyone may publish.
    pub publish_token: Option<String>,
    /// Web origins allowed to open WebSockets, publish and read with CORS
    /// (`--allowed-origins`, `*` for any); `None`: same-origin only. See [`crate::guard`].
    pub allowed_origins: Option<Vec<String>>,
    /// Open connections one client address may hold (`--max-connections-per-ip`).
    pub max_connections_per_ip: usize,
    /// Largest request head (URI and header fields) answered normally; past it 431.
    pub max_header_bytes: usize,
    /// Most header fields in a request; past it 431.
    pub max_headers: usize,
    /// A connection that moves no byte either way for this long, with no request being
    /// handled, is closed (idle HTTP/2, a streaming reader that stopped reading). Idle
    /// HTTP/1.1 keep-alive connections are closed sooner, by `header_read_timeout`.
    pub idle_timeout: Duration,
    /// The server pings each WebSocket this often.
    pub ws_ping_interval: Duration,
    /// A WebSocket that answers no ping (and takes no write) for this long is dead: closed.
    pub ws_pong_timeout: Duration,
    /// Publishes per second one connection may make (HTTP: 429 past it; WebSocket: the
    /// server stops reading that socket until a token is there). 0: unlimited.
    pub publish_rate_per_s: f64,
    /// Publishes a connection may make at once before `publish_rate_per_s` applies.
    pub publish_burst: u32,
    /// Bytes all retained messages together may be charged (`--max-retained-bytes`; see
    /// [`crate::feed::Entry::retained_bytes`]). Past it the oldest messages across topics are
    /// evicted (subscribers behind them get a gap notice).
    pub max_retained_bytes: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            history: 4096,
            max_batch: 1000,
            max_subscriber_lag: 4096,
            tick_rate: 0.0,
            tick_bytes: 64,
            max_connections: 50_000,
            max_message_bytes: 64 * 1024,
            max_topics: 10_000,
            header_read_timeout: Duration::from_secs(10),
            default_longpoll_timeout: Duration::from_secs(30),
            heartbeat_interval: Duration::from_secs(15),
            shutdown_grace: Duration::from_secs(4),
            publish_token: None,
            allowed_origins: None,
            max_connections_per_ip: 10_000,
            max_header_bytes: 16 * 1024,
            max_headers: 64,
            idle_timeout: Duration::from_secs(60),
            ws_ping_interval: Duration::from_secs(30),
            ws_pong_timeout: Duration::from_secs(30),
            publish_rate_per_s: 10_000.0,
            publish_burst: 10_000,
            max_retained_bytes: DEFAULT_MAX_RETAINED_BYTES,
        }
    }
}

/// Default of `max_retained_bytes`: 256 MiB, which a small (1 GiB) machine can hold beside
/// the connections' own buffers.
pub const DEFAULT_MAX_RETAINED_BYTES: u64 = 256 * 1024 * 1024;

/// Long-poll `timeout` bounds, in seconds.
pub const LONGPOLL_TIMEOUT_RANGE_S: std::ops::RangeInclusive<u64> = 1..=120;
