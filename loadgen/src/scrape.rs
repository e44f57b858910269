//! Reads the target's `/metrics` (Prometheus text) for what the server spent: CPU seconds,
//! resident memory, and the bytes it counted on its own sockets per transport.
//!
//! ```text
//! process_cpu_seconds_total 1.25
//! process_resident_memory_bytes 21413888
//! pushlab_bytes_read_total{transport="ws"} 123456
//! ```
//!
//! Each scrape is its own `Connection: close` request, credited by the server to its `other`
//! slot, so it never disturbs a transport's byte counters.

use std::collections::HashMap;
use std::sync::Arc;

use pushlab_proto::ByteCounter;

use crate::config::Target;
use crate::error::LoadgenError;
use crate::http::{ClientError, Conn};

/// One scrape of `/metrics`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scrape {
    /// `name` or `name{labels}` -> value.
    pub values: HashMap<String, f64>,
}

impl Scrape {
    pub fn parse(text: &str) -> Scrape {
        let mut values = HashMap::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.rsplit_once(' ') else {
                continue;
            };
            if let Ok(v) = value.parse::<f64>() {
                values.insert(key.trim().to_string(), v);
            }
        }
        Scrape { values }
    }

    pub fn get(&self, key: &str) -> Option<f64> {
        self.values.get(key).copied()
    }

    pub fn cpu_seconds(&self) -> Option<f64> {
        self.get("process_cpu_seconds_total")
    }

    pub fn rss_bytes(&self) -> Option<u64> {
        self.get("process_resident_memory_bytes").map(|v| v as u64)
    }

    /// A per-transport counter (`pushlab_bytes_read_total{transport="ws"}`).
    pub fn by_transport(&self, name: &str, transport: &str) -> Option<u64> {
        self.get(&format!("{name}{{transport=\"{transport}\"}}"))
            .map(|v| v as u64)
    }

    /// Whether this looks like pushlab-server's metrics.
    pub fn is_pushlab(&self) -> bool {
        self.values.keys().any(|k| k.starts_with("pushlab_"))
    }
}

/// Scrapes `/metrics`. `Ok(None)`: the target answers HTTP but has no metrics there.
pub async fn scrape(target: &Target) -> Result<Option<Scrape>, LoadgenError> {
    let fail = |e: ClientError| match e {
        ClientError::Connect(source) => {
            crate::error::limit_error(&source, "connecting").unwrap_or(LoadgenError::Unreachable {
                target: target.url.clone(),
                error: source,
            })
        }
        ClientError::NotHttp(why) => LoadgenError::NotHttp {
            target: target.url.clone(),
            why,
        },
        e if e.is_disconnect() => LoadgenError::Reset {
            target: target.url.clone(),
            during: "GET /metrics".into(),
        },
        other => LoadgenError::NotHttp {
            target: target.url.clone(),
            why: other.to_string(),
        },
    };
    let mut conn = Conn::connect(target.addr, None, Arc::new(ByteCounter::default()))
        .await
        .map_err(fail)?;
    let req = format!(
        "GET /metrics HTTP/1.1\r\nHost: {}\r\nUser-Agent: pushlab-loadgen\r\nAccept: text/plain\r\nConnection: close\r\n\r\n",
        target.host_header
    );
    let io = async {
        conn.send(req.as_bytes()).await?;
        let head = conn.read_head().await?;
        let (body, _) = conn.read_body(head.body, 16 << 20).await?;
        Ok::<_, ClientError>((head, body))
    };
    let (head, body) = tokio::time::timeout(std::time::Duration::from_secs(10), io)
        .await
        .map_err(|_| LoadgenError::NotHttp {
            target: target.url.clone(),
            why: "no answer to GET /metrics within 10 s".into(),
        })?
        .map_err(fail)?;
    if head.status != 200 {
        return Ok(None);
    }
    let s = Scrape::parse(&String::from_utf8_lossy(&body));
    Ok((s.cpu_seconds().is_some() || s.is_pushlab()).then_some(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_text() {
        let s = Scrape::parse(
            "# HELP x y\n# TYPE x counter\npushlab_bytes_read_total{transport=\"ws\"} 123\nprocess_cpu_seconds_total 1.25\nprocess_resident_memory_bytes 2048\n",
        );
        assert_eq!(s.by_transport("pushlab_bytes_read_total", "ws"), Some(123));
        assert_eq!(s.cpu_seconds(), Some(1.25));
        assert_eq!(s.rss_bytes(), Some(2048));
        assert!(s.is_pushlab());
        assert_eq!(s.by_transport("pushlab_bytes_read_total", "sse"), None);
    }
}
