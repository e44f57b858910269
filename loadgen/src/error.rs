//! What can stop a run. Each variant prints as one line that says what happened and, where a
//! flag can fix it, which flag.

use std::io;

/// A setting that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--target {0}")]
    Target(String),
    #[error("--transports: {0}")]
    Transport(String),
    #[error("{flag} {why}")]
    Invalid { flag: &'static str, why: String },
    /// A `serve` flag the server refused.
    #[error(transparent)]
    Server(#[from] pushlab_server::ConfigError),
}

/// Why a run stopped (losses do not stop a run: they are in the result).
#[derive(Debug, thiserror::Error)]
pub enum LoadgenError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot connect to {target}: {error}")]
    Unreachable { target: String, error: io::Error },
    #[error("{target} does not speak HTTP/1.1: {why}")]
    NotHttp { target: String, why: String },
    #[error("{target} reset or closed the connection during {during}")]
    Reset { target: String, during: String },
    #[error("{target} refused {what}: HTTP {status} {body}")]
    Refused {
        target: String,
        what: String,
        status: u16,
        body: String,
    },
    #[error("{0}")]
    Limit(String),
    #[error("no {transport} subscriber could subscribe: {first_error}")]
    NoSubscriber {
        transport: String,
        first_error: String,
    },
    #[error("publishing to {target} failed: {why}")]
    Publish { target: String, why: String },
    #[error("{context}: {error}")]
    Io { context: String, error: io::Error },
    #[error("{0}")]
    Other(String),
}

/// Turns OS limits into errors that say which flag or setting to change.
pub fn limit_error(e: &io::Error, what: &str) -> Option<LoadgenError> {
    match e.raw_os_error() {
        Some(libc::EMFILE) | Some(libc::ENFILE) => Some(LoadgenError::Limit(format!(
            "out of file descriptors while {what} ({e}): lower --clients or raise the hard open-file limit (ulimit -Hn)"
        ))),
        Some(libc::EADDRNOTAVAIL) | Some(libc::EADDRINUSE) => Some(LoadgenError::Limit(format!(
            "out of local ports or a source address is not usable while {what} ({e}): spread sockets with --source-ips 127.0.0.2-127.0.0.40 (loopback only) or lower --clients"
        ))),
        _ => None,
    }
}
