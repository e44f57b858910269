//! What the browser tests read of the page at `/`: its five columns (transport, state, count,
//! the seqs shown) and JavaScript conditions, polled over the DevTools protocol until they hold
//! or the hang guard passes. Shared by server/tests/browser.rs and
//! loadgen/tests/browser_link.rs (the page through an emulated link).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use serde::Deserialize;

use super::cdp;

/// Hang guard for each wait on the page; conditions are polled, never timed.
pub const WAIT: Duration = Duration::from_secs(20);
pub const TRANSPORTS: [&str; 5] = ["poll", "longpoll", "sse", "stream", "ws"];

/// Chromium at `$PUSHLAB_CHROMIUM` or `/usr/bin/chromium`, if it is there.
pub fn find_chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PUSHLAB_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    path.is_file().then_some(path)
}

/// What the test reads of one column.
#[derive(Debug, Deserialize)]
pub struct Column {
    pub transport: String,
    pub state: String,
    pub count: u64,
    seqs: String,
    #[serde(rename = "newestLine")]
    pub newest_line: Option<u64>,
}

impl Column {
    pub fn seqs(&self) -> Vec<u64> {
        self.seqs
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().expect("seq"))
            .collect()
    }
}

const READ_COLUMNS: &str = "[...document.querySelectorAll('section[data-transport]')].map(c => ({
    transport: c.dataset.transport,
    state: c.dataset.state,
    count: Number(c.dataset.count),
    seqs: c.dataset.seqs,
    newestLine: (s => s ? Number(s) : null)(c.querySelector('[data-role=log] li[data-seq]')?.dataset.seq),
}))";

/// Polls the columns until `done` holds for them; on the hang guard, says what they showed.
pub async fn wait_columns(
    cdp: &mut cdp::Cdp,
    what: &str,
    done: impl Fn(&[Column]) -> bool,
) -> anyhow::Result<Vec<Column>> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let cols: Vec<Column> = serde_json::from_value(cdp.eval(READ_COLUMNS).await?)?;
        let names: Vec<&str> = cols.iter().map(|c| c.transport.as_str()).collect();
        if names == TRANSPORTS && done(&cols) {
            return Ok(cols);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("waited {WAIT:?} for {what}; the columns showed {cols:#?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls a JavaScript condition until it is true.
pub async fn wait_true(cdp: &mut cdp::Cdp, what: &str, expression: &str) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + WAIT;
    while cdp.eval(expression).await?.as_bool() != Some(true) {
        if tokio::time::Instant::now() > deadline {
            bail!("waited {WAIT:?} for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}
