//! Just enough of the Chrome DevTools Protocol to drive headless Chromium from a test: launch
//! with `--remote-debugging-port=0`, read the port Chromium chose from `DevToolsActivePort` in
//! its profile, open one WebSocket to the browser, and talk to one page over a flat session.
//!
//! ```text
//! -> {"id":3,"method":"Runtime.evaluate","params":{"expression":"1+1"},"sessionId":"AB12"}
//! <- {"id":3,"result":{"result":{"type":"number","value":2}},"sessionId":"AB12"}
//! ```
//!
//! Events are read and dropped: the test polls the DOM instead of following events.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// Longest any single DevTools command may take: a hang guard, not a expectation.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Flags for a quiet, throwaway headless Chromium.
const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-proxy-server",
    "--disable-dev-shm-usage",
    "--disable-extensions",
    "--hide-scrollbars",
    "--mute-audio",
    "--remote-debugging-port=0",
];

/// A running Chromium, killed when dropped.
pub struct Browser {
    child: Child,
    profile: PathBuf,
    pub cdp: Cdp,
}

impl Browser {
    /// Starts `binary` with a new profile under `work_dir`, its output in `log`.
    pub async fn launch(
        binary: &Path,
        work_dir: &Path,
        log: &Path,
        window: (u32, u32),
        extra_flags: &[String],
    ) -> anyhow::Result<Browser> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos();
        let profile = work_dir.join(format!("profile-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&profile)?;
        let out = std::fs::File::create(log).with_context(|| format!("creating {log:?}"))?;
        let child = Command::new(binary)
            .args(FLAGS)
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(format!("--window-size={},{}", window.0, window.1))
            .args(extra_flags)
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {binary:?}"))?;
        let mut browser = Browser {
            child,
            profile,
            cdp: Cdp::unconnected(),
        };
        let url = browser.debugger_url(log).await?;
        browser.cdp = Cdp::connect(&url).await?;
        Ok(browser)
    }

    /// Waits for Chromium to write `DevToolsActivePort` (port, then browser target path).
    async fn debugger_url(&mut self, log: &Path) -> anyhow::Result<String> {
        let file = self.profile.join("DevToolsActivePort");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(text) = std::fs::read_to_string(&file) {
                let mut lines = text.lines();
                if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                    return Ok(format!("ws://127.0.0.1:{}{}", port.trim(), path.trim()));
                }
            }
            if let Some(status) = self.child.try_wait()? {
                let output = std::fs::read_to_string(log).unwrap_or_default();
                bail!("chromium exited ({status}) before DevTools was up; its output:\n{output}");
            }
            if tokio::time::Instant::now() > deadline {
                bail!("chromium wrote no {file:?} within 30 s; see {log:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Asks Chromium to quit, kills it if it does not, and removes the profile.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            self.cdp.call_browser("Browser.close", json!({})),
        )
        .await;
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// One DevTools connection, attached to at most one page.
pub struct Cdp {
    ws: Option<WebSocketStream<TcpStream>>,
    next_id: u64,
    session: Option<String>,
}

impl Cdp {
    fn unconnected() -> Cdp {
        Cdp {
            ws: None,
            next_id: 1,
            session: None,
        }
    }

    async fn connect(url: &str) -> anyhow::Result<Cdp> {
        let authority = url
            .strip_prefix("ws://")
            .and_then(|rest| rest.split('/').next())
            .ok_or_else(|| anyhow!("odd DevTools url {url}"))?;
        let tcp = TcpStream::connect(authority).await?;
        let (ws, _) = tokio_tungstenite::client_async(url, tcp)
            .await
            .context("DevTools WebSocket handshake")?;
        Ok(Cdp {
            ws: Some(ws),
            ..Cdp::unconnected()
        })
    }

    /// Opens a new page and attaches to it; later [`Cdp::call`]s go to that page.
    pub async fn open_page(&mut self) -> anyhow::Result<()> {
        let target = self
            .call_browser("Target.createTarget", json!({"url": "about:blank"}))
            .await?;
        let target_id = target["targetId"].clone();
        let attached = self
            .call_browser(
                "Target.attachToTarget",
                json!({"targetId": target_id, "flatten": true}),
            )
            .await?;
        let session = attached["sessionId"]
            .as_str()
            .ok_or_else(|| anyhow!("no sessionId in {attached}"))?;
        self.session = Some(session.to_owned());
        Ok(())
    }

    /// A command to the attached page.
    pub async fn call(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
        let session = self.session.clone();
        self.send(method, params, session).await
    }

    /// A command to the browser itself.
    pub async fn call_browser(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
        self.send(method, params, None).await
    }

    async fn send(
        &mut self,
        method: &str,
        params: Value,
        session: Option<String>,
    ) -> anyhow::Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = Value::String(s);
        }
        let ws = self.ws.as_mut().ok_or_else(|| anyhow!("not connected"))?;
        let exchange = async {
            ws.send(Message::text(msg.to_string())).await?;
            while let Some(frame) = ws.next().await {
                let Message::Text(text) = frame? else {
                    continue;
                };
                let v: Value = serde_json::from_str(text.as_str())?;
                if v["id"].as_u64() != Some(id) {
                    continue; // an event, or a late answer
                }
                if let Some(err) = v.get("error") {
                    bail!("{method}: {err}");
                }
                return Ok(v["result"].clone());
            }
            bail!("DevTools connection closed during {method}")
        };
        tokio::time::timeout(CALL_TIMEOUT, exchange)
            .await
            .map_err(|_| anyhow!("{method}: no answer within {CALL_TIMEOUT:?}"))?
    }

    /// Evaluates a JavaScript expression in the page (promises awaited) and returns its value.
    pub async fn eval(&mut self, expression: &str) -> anyhow::Result<Value> {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await?;
        if let Some(ex) = r.get("exceptionDetails") {
            let text = ex["exception"]["description"]
                .as_str()
                .or(ex["text"].as_str())
                .unwrap_or("?");
            bail!("script threw: {text}\nscript: {expression}");
        }
        Ok(r["result"]["value"].clone())
    }
}
