//! `pushlab-server`: parse flags, bind, serve until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use pushlab_server::ServerConfig;

/// Counts heap bytes in use for `/metrics` (`pushlab_heap_bytes`): memory per connection
/// without the allocator's reuse hiding it (see `pushlab_server::usage`).
#[global_allocator]
static ALLOC: pushlab_server::usage::CountingAlloc = pushlab_server::usage::CountingAlloc;

/// One live feed served by short polling, long polling, SSE, chunked streaming and WebSocket.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    bind: SocketAddr,
    /// Messages kept per topic for resuming subscribers.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    history: u64,
    /// Most messages in one poll or long-poll batch.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_batch: u64,
    /// Messages a stream or WebSocket subscriber may lag before a gap notice moves it on
    /// (default: --history).
    #[arg(long)]
    max_subscriber_lag: Option<usize>,
    /// Built-in ticker on topic "ticker", messages per second (0: off).
    #[arg(long, default_value_t = 1.0)]
    tick_rate: f64,
    /// Bytes of data in each ticker message.
    #[arg(long, default_value_t = 64)]
    tick_bytes: usize,
    /// Open connections at most; past it, 503 with Retry-After.
    #[arg(long, default_value_t = 50_000)]
    max_connections: usize,
    /// Largest message in bytes (413 on publish, close 1009 on WebSocket).
    #[arg(long, default_value_t = 64 * 1024)]
    max_message_bytes: usize,
    /// Most topics (made on first use).
    #[arg(long, default_value_t = 10_000)]
    max_topics: usize,
    /// Seconds a client has to send a whole request head.
    #[arg(long, default_value_t = 10.0)]
    header_read_timeout: f64,
    /// Seconds between SSE/stream heartbeats.
    #[arg(long, default_value_t = 15.0)]
    heartbeat: f64,
    /// Bearer token that publishing needs (POST /publish, WebSocket text frames, POST /ticker);
    /// WebSockets may pass it as ?token=. Default: anyone may publish.
    #[arg(long, env = "PUSHLAB_PUBLISH_TOKEN")]
    publish_token: Option<String>,
    /// Web origins (comma-separated, e.g. https://lab.example,http://localhost:5173, or *)
    /// allowed to open WebSockets, publish and read with CORS. Default: same-origin only.
    #[arg(long, value_delimiter = ',')]
    allowed_origins: Option<Vec<String>>,
    /// Open connections one client address may hold; past it, 503.
    #[arg(long, default_value_t = 10_000)]
    max_connections_per_ip: usize,
    /// Largest request head (URI and header fields) in bytes; past it, 431.
    #[arg(long, default_value_t = 16 * 1024)]
    max_header_bytes: usize,
    /// Most header fields in a request; past it, 431 (4 to 100: hyper refuses more than 100).
    #[arg(long, default_value_t = 64)]
    max_headers: usize,
    /// Seconds a connection may move no byte (with no request running) before it is closed;
    /// must exceed --heartbeat.
    #[arg(long, default_value_t = 60.0)]
    idle_timeout: f64,
    /// Seconds between the server's WebSocket pings.
    #[arg(long, default_value_t = 30.0)]
    ws_ping_interval: f64,
    /// Seconds a WebSocket has to answer a ping (or take a write) before it is dropped.
    #[arg(long, default_value_t = 30.0)]
    ws_pong_timeout: f64,
    /// Publishes per second one connection may make (HTTP: 429 past it; WebSocket: reading
    /// pauses). 0: unlimited.
    #[arg(long, default_value_t = 10_000.0)]
    publish_rate: f64,
    /// Publishes one connection may make at once before --publish-rate applies.
    #[arg(long, default_value_t = 10_000)]
    publish_burst: u32,
}

fn secs(name: &str, s: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(s)
        .ok()
        .filter(|d| !d.is_zero())
        .with_context(|| format!("--{name} must be a positive number of seconds, got {s}"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    if !(args.tick_rate >= 0.0 && args.tick_rate <= 1e6) {
        anyhow::bail!(
            "--tick-rate must be between 0 and 1000000, got {}",
            args.tick_rate
        );
    }
    let history = args.history as usize;
    let config = ServerConfig {
        history,
        max_batch: args.max_batch as usize,
        max_subscriber_lag: args.max_subscriber_lag.unwrap_or(history).clamp(1, history),
        tick_rate: args.tick_rate,
        tick_bytes: args.tick_bytes,
        max_connections: args.max_connections.max(1),
        max_message_bytes: args.max_message_bytes.max(1),
        max_topics: args.max_topics.max(1),
        header_read_timeout: secs("header-read-timeout", args.header_read_timeout)?,
        heartbeat_interval: secs("heartbeat", args.heartbeat)?,
        publish_token: args.publish_token.filter(|t| !t.is_empty()),
        allowed_origins: args.allowed_origins.map(|list| {
            list.into_iter()
                .map(|o| o.trim().to_string())
                .filter(|o| !o.is_empty())
                .collect()
        }),
        max_connections_per_ip: args.max_connections_per_ip.max(1),
        max_header_bytes: args.max_header_bytes.max(256),
        max_headers: args.max_headers.clamp(4, 100),
        idle_timeout: secs("idle-timeout", args.idle_timeout)?,
        ws_ping_interval: secs("ws-ping-interval", args.ws_ping_interval)?,
        ws_pong_timeout: secs("ws-pong-timeout", args.ws_pong_timeout)?,
        publish_rate_per_s: args.publish_rate.max(0.0),
        publish_burst: args.publish_burst.max(1),
        ..ServerConfig::default()
    };
    if config.idle_timeout <= config.heartbeat_interval {
        anyhow::bail!("--idle-timeout must exceed --heartbeat, or quiet streams would be cut");
    }
    if !args.bind.ip().is_loopback() && config.publish_token.is_none() {
        tracing::warn!(
            "listening on {} without --publish-token: anyone who reaches it may publish",
            args.bind
        );
    }
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .with_context(|| format!("binding {}", args.bind))?;
    tracing::info!(
        "pushlab-server {} listening on http://{} (ticker {} msg/s)",
        env!("CARGO_PKG_VERSION"),
        listener.local_addr()?,
        config.tick_rate
    );
    pushlab_server::serve(listener, config, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}
