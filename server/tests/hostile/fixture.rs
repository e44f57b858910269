//! The hostile tests' server fixture (short timeouts so cuts happen in a second or two) and
//! the probe log.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pushlab_proto::Transport;
use pushlab_server::metrics::{Rejection, Slot};
use pushlab_server::{ServerConfig, Shared};
use tokio::sync::oneshot;

/// Timeouts short enough that slow-client cuts happen within the test's time.
pub fn config() -> ServerConfig {
    ServerConfig {
        tick_rate: 0.0,
        header_read_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(2),
        default_longpoll_timeout: Duration::from_secs(2),
        heartbeat_interval: Duration::from_millis(300),
        ws_ping_interval: Duration::from_millis(500),
        ws_pong_timeout: Duration::from_secs(1),
        shutdown_grace: Duration::from_secs(2),
        ..ServerConfig::default()
    }
}

/// A server running in this process until dropped.
pub struct Server {
    pub addr: SocketAddr,
    pub shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
}

pub async fn start(config: ServerConfig) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    let (shared, shutdown_tx) = Shared::new(config);
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(pushlab_server::serve_shared(
        listener,
        shared.clone(),
        shutdown_tx,
        async move {
            let _ = stopped.await;
        },
    ));
    Server {
        addr,
        shared,
        stop: Some(stop),
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

impl Server {
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

    /// Waits (bounded) until no connection is open; the count at the end.
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

    /// Waits (bounded) until `why` has been counted at least `n` times.
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

static LOG: Mutex<()> = Mutex::new(());

/// Tests that judge memory by this process's RSS take this lock, so that no other heavy test
/// (whose client-side buffers count in the same RSS) runs beside them.
pub static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Records one probe (attack and the server's answer) for the reliability report.
pub fn record(class: &str, attack: &str, answer: &str) {
    let Ok(path) = std::env::var("PUSHLAB_HOSTILE_LOG") else {
        return;
    };
    let line = serde_json::json!({ "class": class, "attack": attack, "answer": answer });
    let _guard = LOG.lock().unwrap_or_else(|e| e.into_inner());
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{line}");
    }
}
