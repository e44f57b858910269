//! A pushlab-server in its own process, started from this very binary.
//!
//! The server's cost is read from its `/metrics` (process CPU and RSS). Were the server in the
//! loadgen's process, those figures would include the loadgen. So `compare` and the tests that
//! look at server cost run `pushlab-loadgen serve --bind 127.0.0.1:0` (a hidden subcommand
//! that runs `pushlab_server::serve`) as a child process:
//!
//! ```text
//! $ pushlab-loadgen serve --bind 127.0.0.1:0
//! listening on http://127.0.0.1:40123
//! ```

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::error::LoadgenError;

/// The first line `serve` prints.
pub const LISTENING_PREFIX: &str = "listening on http://";

/// A server child process; killed when dropped.
#[derive(Debug)]
pub struct EmbeddedServer {
    pub child: Child,
    pub addr: SocketAddr,
}

impl EmbeddedServer {
    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the server (SIGKILL) and waits for it.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// Starts `current_exe() serve --bind 127.0.0.1:0 ARGS...` and waits for its address.
pub async fn spawn_embedded_server(args: &[String]) -> Result<EmbeddedServer, LoadgenError> {
    let exe = std::env::current_exe().map_err(|e| LoadgenError::Io {
        context: "finding this executable".into(),
        error: e,
    })?;
    spawn_server_from(&exe, args).await
}

/// As [`spawn_embedded_server`] with an explicit `pushlab-loadgen` binary (tests pass
/// `env!("CARGO_BIN_EXE_pushlab-loadgen")`, since their own executable is the test harness).
pub async fn spawn_server_from(
    exe: &Path,
    args: &[String],
) -> Result<EmbeddedServer, LoadgenError> {
    spawn_server_in(exe, None, "127.0.0.1:0", args).await
}

/// As [`spawn_server_from`], listening on `bind`, inside network namespace `netns` when given
/// (`ip netns exec NETNS EXE serve ...`: `ip` joins the namespace and then execs the server,
/// so the child's pid is the server's).
pub async fn spawn_server_in(
    exe: &Path,
    netns: Option<&str>,
    bind: &str,
    args: &[String],
) -> Result<EmbeddedServer, LoadgenError> {
    let mut command = match netns {
        None => Command::new(exe),
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(exe);
            c
        }
    };
    let mut child = command
        .arg("serve")
        .arg("--bind")
        .arg(bind)
        .args(args)
        // `serve` takes pushlab-server's flags, --publish-token's environment variable
        // included; the loadgen publishes without a token, so the child must not pick one up.
        .env_remove("PUSHLAB_PUBLISH_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| LoadgenError::Io {
            context: format!("starting {} serve", exe.display()),
            error: e,
        })?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .map_err(|_| LoadgenError::Other("the embedded server did not start within 20 s".into()))?
        .map_err(|e| LoadgenError::Io {
            context: "reading the embedded server's address".into(),
            error: e,
        })?
        .ok_or_else(|| LoadgenError::Other("the embedded server exited before listening".into()))?;
    let addr = line
        .trim()
        .strip_prefix(LISTENING_PREFIX)
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| {
            LoadgenError::Other(format!(
                "the embedded server said {line:?}, not its address"
            ))
        })?;
    // Keep draining stdout so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(EmbeddedServer { child, addr })
}

/// The SPKI pin of the server at `addr`, from its `GET /tls` (pushlab-server answers it on the
/// cleartext side of its one port: `{"spki_sha256": "...", ...}`), for the TLS phases of
/// `compare` against a server that made its own certificate (`--tls-self-signed`).
///
/// # Errors
/// No answer within 10 s, a status other than 200 (TLS off: 404), or no `spki_sha256`.
pub async fn fetch_tls_pin(addr: SocketAddr) -> Result<crate::tls::TlsTrust, LoadgenError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fail = |why: String| LoadgenError::Other(format!("GET http://{addr}/tls: {why}"));
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        let request = format!("GET /tls HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        s.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        s.take(1 << 16).read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    let answer = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| fail("no answer within 10 s".into()))?
        .map_err(|e| fail(e.to_string()))?;
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| fail("no complete response".into()))?;
    if !head.starts_with("HTTP/1.1 200") {
        let status = head.lines().next().unwrap_or_default();
        return Err(fail(format!("{status} (is the server's TLS on?)")));
    }
    let v: serde_json::Value =
        serde_json::from_str(body.trim()).map_err(|e| fail(format!("body: {e}")))?;
    v.get("spki_sha256")
        .and_then(|p| p.as_str())
        .map(|p| crate::tls::TlsTrust::SpkiSha256(p.to_string()))
        .ok_or_else(|| fail("no spki_sha256 in the body".into()))
}
