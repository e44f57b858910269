//! # pushlab-loadgen
//!
//! The lab's instrument: it drives subscribers of each transport against a server, pushes a
//! feed through it with an open-loop publisher, and measures bytes on the wire (split by what
//! they carry), publish-to-deliver latency, connections, correctness and the server's cost.
//! Every byte figure is counted on the client sockets themselves, so a packet capture of the
//! same run can check it.
//!
//! # Layout
//!
//! - [`run()`] ([`run`](mod@run)): phases of transports, subscribers, publisher, scrapes.
//! - [`config`]: checked settings ([`RunConfig`]), duration and address parsers; [`cli`]:
//!   the clap flags that become them.
//! - [`client`]: one subscriber per transport behind one trait, the driver, the target
//!   [`client::Dialect`].
//! - [`http`]: HTTP/1.1 by hand over a counted socket; [`headers`]: request header profiles.
//! - [`publisher`]: the open-loop publisher and its schedule.
//! - [`record`]: per-transport recorder, HDR histograms, the sequence check.
//! - [`scrape`]: the target's `/metrics`; [`embedded`]: a server child process.
//! - [`link`]: the packet-level network emulator (namespaces + TUN) and its shell.
//! - [`summary`], [`merge`], [`schema`], [`environment`], [`progress`], [`net`].
//! - [`tls`]: what a TLS subscriber trusts (an SPKI pin, a CA file, a certificate).
//!
//! ```no_run
//! # async fn demo() -> Result<(), pushlab_loadgen::LoadgenError> {
//! let mut config = pushlab_loadgen::RunConfig::new("http://127.0.0.1:8080".parse()?);
//! config.clients = 50;
//! let result = pushlab_loadgen::run(config).await?;
//! println!("{}", pushlab_loadgen::summary::table(&result));
//! # Ok(()) }
//! ```

pub mod cli;
pub mod client;
pub mod config;
pub mod embedded;
pub mod environment;
pub mod error;
pub mod headers;
pub mod http;
pub mod link;
pub mod merge;
pub mod net;
pub mod progress;
pub mod publisher;
pub mod record;
pub mod run;
pub mod schema;
pub mod scrape;
pub mod summary;
pub mod tls;

// Results (issue 4): `report`, `compare`, `sweep` and their charts and REPORT.md.
pub mod compare;
pub mod report;
pub mod sweep;

pub use config::RunConfig;
pub use embedded::{spawn_embedded_server, spawn_server_from, EmbeddedServer};
pub use error::{ConfigError, LoadgenError};
pub use run::run;

/// Runs a pushlab-server in this process until `shutdown`, printing `listening on http://ADDR`
/// on stdout once bound (the `serve` subcommand).
pub async fn serve(
    args: &cli::ServeArgs,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), LoadgenError> {
    use std::io::Write;
    let config = args
        .server
        .clone()
        .into_config()
        .map_err(ConfigError::from)?;
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .map_err(|e| LoadgenError::Io {
            context: format!("binding {}", args.bind),
            error: e,
        })?;
    let addr = listener.local_addr().map_err(|e| LoadgenError::Io {
        context: "reading the bound address".into(),
        error: e,
    })?;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}{addr}", embedded::LISTENING_PREFIX);
    let _ = out.flush();
    drop(out);
    pushlab_server::serve(listener, config, shutdown)
        .await
        .map_err(|e| LoadgenError::Other(format!("server: {e}")))
}
