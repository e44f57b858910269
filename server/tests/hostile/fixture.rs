//! The hostile tests' server settings (short timeouts so cuts happen in a second or two),
//! on the shared fixture ([`pushlab_server::testing`]), and the probe log.

use std::io::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use pushlab_server::ServerConfig;

pub use pushlab_server::testing::{start_server, TestServer};

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
