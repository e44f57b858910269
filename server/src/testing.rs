//! The one "server on 127.0.0.1:0" fixture, for tests and benches (cargo feature `testing`):
//! every integration-test binary (`server/tests/it`, `hostile`, `browser`, the loadgen's) and
//! every bench starts its in-process server with [`start_server`].
//!
//! ```no_run
//! # async fn demo() {
//! use pushlab_server::testing::start_server;
//! let server = start_server(pushlab_server::ServerConfig::default()).await;
//! let url = format!("http://{}/poll/news", server.addr);
//! # let _ = url;
//! server.stop().await; // shuts down, waits for serve to return, checks nothing panicked
//! # }
//! ```
//!
//! TLS: [`with_self_signed_tls`] gives a config that serves TLS with a certificate made now;
//! [`TestServer::tls`] holds it (DER, PEM, SPKI pin) and [`TestServer::tls_client_config`]
//! gives rustls client settings that trust exactly that certificate.
//!
//! Panics inside tokio tasks do not reach the test: [`start_server`] installs (once per
//! process) a panic hook that counts every panic raised outside test and bench code (files
//! under `tests/` or `benches/`), and [`TestServer::stop`] asserts none happened, so "no input
//! panics the server" is checked by every test that stops its server.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use pushlab_proto::Transport;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::metrics::{Rejection, Slot};
use crate::tls::TlsSettings;
use crate::{ServerConfig, ServerError, Shared};

/// How long [`TestServer::stop`] waits for `serve` to return: a guard against hangs, never a
/// performance claim.
pub const STOP_GUARD: Duration = Duration::from_secs(30);

static SERVER_PANICS: AtomicU64 = AtomicU64::new(0);

fn watch_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_harness = info
                .location()
                .is_some_and(|l| l.file().contains("tests/") || l.file().contains("benches/"));
            if !in_harness {
                SERVER_PANICS.fetch_add(1, Ordering::SeqCst);
            }
            default(info);
        }));
    });
}

/// Panics raised outside test and bench code so far, in this process.
pub fn server_panics() -> u64 {
    SERVER_PANICS.load(Ordering::SeqCst)
}

/// A server running in this process ([`crate::serve_shared`] in a spawned task); shut down
/// when dropped, or with [`TestServer::stop`] to wait for it and check it.
#[derive(Debug)]
pub struct TestServer {
    /// Where it listens (127.0.0.1, a port the kernel chose).
    pub addr: SocketAddr,
    /// Its state, for reading metrics and the feed.
    pub shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ServerError>>>,
}

/// Binds 127.0.0.1:0 and serves `config` in a task on the current runtime (connected to
/// `config.backplane` if it names one).
///
/// # Panics
/// If 127.0.0.1:0 cannot be bound, or the backplane cannot be reached.
pub async fn start_server(config: ServerConfig) -> TestServer {
    watch_panics();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("the bound address");
    let (shared, shutdown_tx) = Shared::connect(config)
        .await
        .expect("the backplane answers");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(crate::serve_shared(
        listener,
        shared.clone(),
        shutdown_tx,
        async move {
            let _ = stopped.await;
        },
    ));
    TestServer {
        addr,
        shared,
        stop: Some(stop),
        task: Some(task),
    }
}

/// `config`, serving TLS (beside cleartext, on the same port) with a self-signed certificate
/// for `localhost`, `127.0.0.1` and `::1` made now.
///
/// # Panics
/// If rcgen or rustls fail (they do not with these names).
pub fn with_self_signed_tls(config: ServerConfig) -> ServerConfig {
    ServerConfig {
        tls: Some(TlsSettings::self_signed().expect("a self-signed certificate")),
        ..config
    }
}

impl TestServer {
    /// Its TLS settings (certificate DER and PEM, SPKI pin), if it serves TLS.
    pub fn tls(&self) -> Option<&TlsSettings> {
        self.shared.config.tls.as_ref()
    }

    /// rustls client settings (ring provider) that trust this server's certificate and no
    /// other, offering the ALPN ids `alpn` (e.g. `[b"h2"]`, `[b"http/1.1"]`).
    ///
    /// # Panics
    /// If the server does not serve TLS.
    pub fn tls_client_config(&self, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        let tls = self.tls().expect("the server serves TLS");
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(rustls::pki_types::CertificateDer::from(
                tls.cert_der.clone(),
            ))
            .expect("the server's certificate as a trust anchor");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS 1.2 and 1.3")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Triggers shutdown and waits for `serve` to return; how long that took.
    ///
    /// # Panics
    /// If `serve` takes longer than [`STOP_GUARD`], returns an error or panicked, or if any
    /// panic was raised outside test code while it ran.
    pub async fn stop(mut self) -> Duration {
        let started = Instant::now();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = self.task.take().expect("a server is stopped once");
        tokio::time::timeout(STOP_GUARD, task)
            .await
            .expect("serve did not return after shutdown")
            .expect("the serve task panicked")
            .expect("serve returned an error");
        assert_eq!(server_panics(), 0, "the server panicked (see the output)");
        started.elapsed()
    }

    /// Refusals counted for `why` so far.
    pub fn rejected(&self, why: Rejection) -> u64 {
        self.shared.metrics.rejections(why)
    }

    /// Open connections over every slot (transports, publish, other).
    pub fn open_connections(&self) -> i64 {
        let m = &self.shared.metrics;
        Transport::ALL
            .iter()
            .map(|t| Slot::Transport(*t))
            .chain([Slot::Publish, Slot::Other])
            .map(|s| m.slot(s).open_connections.load(Ordering::Relaxed))
            .sum()
    }

    /// Waits (at most `limit`) until no connection is open and no session task runs; the
    /// count of open connections at the end.
    pub async fn settle(&self, limit: Duration) -> i64 {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let open = self.open_connections();
            if (open == 0 && self.shared.tasks.is_empty()) || tokio::time::Instant::now() > deadline
            {
                return open;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (at most `limit`) until `why` has been counted at least `n` times; the count at
    /// the end.
    pub async fn wait_rejected(&self, why: Rejection, n: u64, limit: Duration) -> u64 {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let got = self.rejected(why);
            if got >= n || tokio::time::Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
