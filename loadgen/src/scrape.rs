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
//!
//! A target without `/metrics` (nginx-nchan) can still be costed with `--server-pid PID`: the
//! CPU time and RSS of PID and all its descendants (nginx's master and workers, or the shell
//! that started them), read from `/proc/*/stat` and `/proc/*/statm` ([`cost`]).

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
    /// Read from `/proc` for this process tree rather than from `/metrics`.
    pub proc_pid: Option<u32>,
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
        Scrape {
            values,
            proc_pid: None,
        }
    }

    /// CPU seconds and RSS of `pid` and its descendants, as `process_cpu_seconds_total` and
    /// `process_resident_memory_bytes`; `None` if `pid` is not running.
    pub fn from_proc(pid: u32) -> Option<Scrape> {
        let procs = proc_table();
        let tree = process_tree(pid, &procs);
        if tree.is_empty() {
            return None;
        }
        let mine: Vec<&ProcStat> = procs.iter().filter(|q| tree.contains(&q.pid)).collect();
        // SAFETY: sysconf only reads a constant.
        let (tick, page) = unsafe {
            (
                libc::sysconf(libc::_SC_CLK_TCK).max(1) as f64,
                libc::sysconf(libc::_SC_PAGESIZE).max(1) as f64,
            )
        };
        let ticks: u64 = mine.iter().map(|q| q.cpu_ticks).sum();
        let pages: u64 = mine.iter().map(|q| q.rss_pages).sum();
        let values = HashMap::from([
            ("process_cpu_seconds_total".to_string(), ticks as f64 / tick),
            (
                "process_resident_memory_bytes".to_string(),
                pages as f64 * page,
            ),
        ]);
        Some(Scrape {
            values,
            proc_pid: Some(pid),
        })
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

/// One process as `/proc` shows it.
#[derive(Clone, Copy, Debug)]
struct ProcStat {
    pid: u32,
    ppid: u32,
    /// utime + stime, clock ticks.
    cpu_ticks: u64,
    rss_pages: u64,
}

/// Every process readable in `/proc`.
fn proc_table() -> Vec<ProcStat> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut procs = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": utime and stime are the 14th and 15th fields.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
        let (Some(ppid), Some(utime), Some(stime)) = (num(1), num(11), num(12)) else {
            continue;
        };
        let rss_pages = std::fs::read_to_string(format!("/proc/{pid}/statm"))
            .ok()
            .and_then(|m| m.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0);
        procs.push(ProcStat {
            pid,
            ppid: ppid as u32,
            cpu_ticks: utime + stime,
            rss_pages,
        });
    }
    procs
}

/// `pid` and its descendants (empty when `pid` is not in `procs`).
fn process_tree(pid: u32, procs: &[ProcStat]) -> Vec<u32> {
    if !procs.iter().any(|q| q.pid == pid) {
        return Vec::new();
    }
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(procs.iter().filter(|q| q.ppid == parent).map(|q| q.pid));
        i += 1;
    }
    tree
}

/// The target's cost counters: its `/metrics`, or, when it has none and `server_pid` is given,
/// that process tree's CPU and RSS from `/proc` ([`Scrape::from_proc`]).
pub async fn cost(
    target: &Target,
    server_pid: Option<u32>,
) -> Result<Option<Scrape>, LoadgenError> {
    match (scrape(target).await?, server_pid) {
        (None, Some(pid)) => Scrape::from_proc(pid)
            .map(Some)
            .ok_or_else(|| LoadgenError::Other(format!("--server-pid {pid}: no such process"))),
        (metrics, _) => Ok(metrics),
    }
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

    #[test]
    fn a_process_tree_is_costed_from_proc() {
        let me = std::process::id();
        let s = Scrape::from_proc(me).unwrap();
        assert_eq!(s.proc_pid, Some(me));
        assert!(s.rss_bytes().unwrap() > 0);
        assert!(s.cpu_seconds().unwrap() >= 0.0);
        // A child counts under its parent (nginx's workers under the master or run.sh).
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let tree = process_tree(me, &proc_table());
        let _ = child.kill();
        let _ = child.wait();
        assert!(tree.contains(&me) && tree.contains(&child.id()), "{tree:?}");
        assert!(Scrape::from_proc(u32::MAX).is_none());
    }
}
