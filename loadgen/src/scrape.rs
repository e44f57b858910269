//! Reads what the target spent: CPU, resident memory, heap bytes in use, the kernel's memory of
//! its sockets, and the bytes it counted on its own sockets per transport, from its `/metrics`
//! (Prometheus text):
//!
//! ```text
//! # HELP process_cpu_seconds_total User and system CPU time spent in seconds (getrusage, microseconds).
//! process_cpu_seconds_total 1.250321
//! process_resident_memory_bytes 21413888
//! pushlab_heap_bytes 5242880
//! pushlab_socket_kernel_bytes{transport="ws"} 1310720
//! pushlab_bytes_read_total{transport="ws"} 123456
//! ```
//!
//! Each scrape is its own `Connection: close` request, credited by the server to its `other`
//! slot, so it never disturbs a transport's byte counters.
//!
//! # Where CPU comes from ([`CpuSource`])
//!
//! - `getrusage`: pushlab-server's `/metrics` says so in its HELP line (microseconds).
//! - `schedstat`: a target without `/metrics` (nginx-nchan), or a pushlab-server whose CPU is
//!   still in clock ticks, when its pid is known (`--server-pid`, or the child `compare`
//!   starts): the first field of `/proc/PID/task/TID/schedstat` (nanoseconds on CPU) summed over
//!   every thread of PID and its descendants (nginx's master and workers, or the shell that
//!   started them). Threads and processes that ended between two reads take their time with
//!   them; nginx's workers live as long as the server, so nothing is lost there.
//! - `proc-stat`: `/metrics` in 10 ms clock ticks and no pid to do better: said in
//!   `ServerCost::unavailable`.
//!
//! # Kernel socket memory without `/metrics`
//!
//! `ss -tmnH state established '( sport = :PORT )'`: the `skmem:(r,rb,t,tb,f,w,o,bl,d)` of every
//! server-side socket of the target's port, summed as pushlab-server sums its own
//! (`r + f + w + o + bl`: receive queue, forward allocation, send queue, option memory,
//! backlog). Only for a target on this host's loopback; elsewhere the figure is left out.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use pushlab_proto::ByteCounter;

use crate::config::Target;
use crate::error::LoadgenError;
use crate::http::{ClientError, Conn};

/// Where a scrape's CPU figure comes from (the module docs say when each is used).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CpuSource {
    /// `/metrics`, from `getrusage(2)`: microseconds.
    Getrusage,
    /// `/proc/PID/task/*/schedstat` over the process tree: nanoseconds.
    Schedstat,
    /// `/metrics` or `/proc/PID/stat` in clock ticks (10 ms at `CLK_TCK` 100).
    #[default]
    ProcStat,
}

impl CpuSource {
    /// The name written to `ServerCost::cpu_source`.
    pub fn as_str(self) -> &'static str {
        match self {
            CpuSource::Getrusage => "getrusage",
            CpuSource::Schedstat => "schedstat",
            CpuSource::ProcStat => "proc-stat",
        }
    }
}

/// One scrape of the target's cost counters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scrape {
    /// `name` or `name{labels}` -> value.
    pub values: HashMap<String, f64>,
    /// Read from `/proc` for this process tree rather than from `/metrics`.
    pub proc_pid: Option<u32>,
    /// Where `process_cpu_seconds_total` comes from.
    pub cpu_source: CpuSource,
    /// Kernel socket memory of the target's server-side sockets on its port, bytes, from `ss`
    /// (only where `/metrics` has no `pushlab_socket_kernel_bytes`).
    pub ss_kernel_bytes: Option<u64>,
}

impl Scrape {
    pub fn parse(text: &str) -> Scrape {
        let mut values = HashMap::new();
        let mut cpu_source = CpuSource::ProcStat;
        for line in text.lines() {
            let line = line.trim();
            if let Some(help) = line.strip_prefix("# HELP process_cpu_seconds_total ") {
                if help.contains("getrusage") {
                    cpu_source = CpuSource::Getrusage;
                }
                continue;
            }
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
            cpu_source,
            ss_kernel_bytes: None,
        }
    }

    /// CPU seconds (schedstat) and RSS of `pid` and its descendants, as
    /// `process_cpu_seconds_total` and `process_resident_memory_bytes`; `None` if `pid` is not
    /// running.
    pub fn from_proc(pid: u32) -> Option<Scrape> {
        let usage = tree_usage(Path::new("/proc"), pid)?;
        let values = HashMap::from([
            (
                "process_cpu_seconds_total".to_string(),
                usage.cpu_ns as f64 / 1e9,
            ),
            (
                "process_resident_memory_bytes".to_string(),
                usage.rss_bytes as f64,
            ),
        ]);
        Some(Scrape {
            values,
            proc_pid: Some(pid),
            cpu_source: CpuSource::Schedstat,
            ss_kernel_bytes: None,
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

    /// `pushlab_heap_bytes`: the allocator's bytes in use (pushlab-server only).
    pub fn heap_bytes(&self) -> Option<u64> {
        self.get("pushlab_heap_bytes").map(|v| v as u64)
    }

    /// Kernel memory of the server-side sockets of `transport`: pushlab-server's
    /// `pushlab_socket_kernel_bytes{transport=...}`, else the `ss` sum over the target's port
    /// (every socket of the port: exact for a phase that runs one transport).
    pub fn kernel_socket_bytes(&self, transport: &str) -> Option<u64> {
        self.by_transport("pushlab_socket_kernel_bytes", transport)
            .or(self.ss_kernel_bytes)
    }

    /// Kernel objects one TCP connection holds besides its queues: pushlab-server's
    /// `pushlab_socket_struct_bytes`, else this host's `/proc/slabinfo` read the same way
    /// (for a target on this host).
    pub fn socket_struct_bytes(&self) -> Option<u64> {
        self.get("pushlab_socket_struct_bytes")
            .map(|v| v as u64)
            .or(self
                .ss_kernel_bytes
                .and(pushlab_server::usage::socket_struct_bytes()))
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

/// CPU and memory of a process tree.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TreeUsage {
    /// Nanoseconds on CPU, summed over every live thread of the tree (schedstat).
    pub cpu_ns: u64,
    pub rss_bytes: u64,
    /// Processes in the tree.
    pub processes: usize,
}

/// One process as `/proc` shows it.
#[derive(Clone, Copy, Debug)]
struct ProcEntry {
    pid: u32,
    ppid: u32,
}

/// Every process readable under `proc` (a `/proc` or a fake of it), with its parent.
fn proc_table(proc: &Path) -> Vec<ProcEntry> {
    let Ok(dir) = std::fs::read_dir(proc) else {
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
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": the comm may hold spaces and parentheses.
        let Some(ppid) = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok())
        else {
            continue;
        };
        procs.push(ProcEntry { pid, ppid });
    }
    procs
}

/// `pid` and its descendants (empty when `pid` is not in `procs`).
fn process_tree(pid: u32, procs: &[ProcEntry]) -> Vec<u32> {
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

/// Nanoseconds on CPU of every thread of process `pid` under `proc`: the first field of each
/// `task/TID/schedstat` (`Documentation/scheduler/sched-stats.rst`: "time spent on the cpu").
fn process_cpu_ns(proc: &Path, pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(proc.join(pid.to_string()).join("task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// CPU (schedstat) and RSS (statm) of `pid` and its descendants under `proc`; `None` when `pid`
/// is not there.
pub fn tree_usage(proc: &Path, pid: u32) -> Option<TreeUsage> {
    let tree = process_tree(pid, &proc_table(proc));
    if tree.is_empty() {
        return None;
    }
    // SAFETY: sysconf only reads a constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    let mut usage = TreeUsage {
        processes: tree.len(),
        ..TreeUsage::default()
    };
    for &p in &tree {
        usage.cpu_ns += process_cpu_ns(proc, p);
        usage.rss_bytes += std::fs::read_to_string(proc.join(p.to_string()).join("statm"))
            .ok()
            .and_then(|m| m.split_whitespace().nth(1)?.parse::<u64>().ok())
            .map_or(0, |pages| pages * page);
    }
    Some(usage)
}

/// Sums the kernel memory of sockets in `ss -tmnH` output: `r + f + w + o + bl` of each
/// `skmem:(r0,rb..,t0,tb..,f0,w0,o0,bl0,d0)`. Returns (sockets, bytes).
pub fn sum_skmem(ss_output: &str) -> (u64, u64) {
    let mut sockets = 0;
    let mut bytes = 0;
    for part in ss_output.split("skmem:(").skip(1) {
        let Some(inner) = part.split(')').next() else {
            continue;
        };
        sockets += 1;
        for field in inner.split(',') {
            let name_end = field
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(field.len());
            let (name, value) = field.split_at(name_end);
            if matches!(name, "r" | "f" | "w" | "o" | "bl") {
                bytes += value.parse::<u64>().unwrap_or(0);
            }
        }
    }
    (sockets, bytes)
}

/// Kernel socket memory of the established server-side sockets on `port` of this host, from
/// `ss`; `None` where `ss` cannot run.
async fn ss_kernel_bytes(port: u16) -> Option<u64> {
    let out = tokio::process::Command::new("ss")
        .args([
            "-tmnH",
            "state",
            "established",
            &format!("( sport = :{port} )"),
        ])
        .output()
        .await
        .ok()
        .filter(|o| o.status.success())?;
    Some(sum_skmem(&String::from_utf8_lossy(&out.stdout)).1)
}

/// Whether the target's sockets are this host's (loopback), so `ss` here sees them.
pub fn target_is_local(target: &Target) -> bool {
    let ip: IpAddr = target.addr.ip();
    ip.is_loopback()
}

/// The target's cost counters: its `/metrics`, with CPU from `/proc` schedstat where the
/// metrics only have clock ticks and `server_pid` is known; or, when it has no `/metrics` and
/// `server_pid` is given, that process tree's CPU and RSS from `/proc` ([`Scrape::from_proc`])
/// and its port's kernel socket memory from `ss`.
pub async fn cost(
    target: &Target,
    server_pid: Option<u32>,
) -> Result<Option<Scrape>, LoadgenError> {
    let mut scrape = match (scrape(target).await?, server_pid) {
        (None, Some(pid)) => Scrape::from_proc(pid)
            .ok_or_else(|| LoadgenError::Other(format!("--server-pid {pid}: no such process")))?,
        (Some(mut m), Some(pid)) if m.cpu_source != CpuSource::Getrusage => {
            if let Some(u) = tree_usage(Path::new("/proc"), pid) {
                m.values
                    .insert("process_cpu_seconds_total".into(), u.cpu_ns as f64 / 1e9);
                m.cpu_source = CpuSource::Schedstat;
            }
            m
        }
        (Some(m), _) => m,
        (None, None) => return Ok(None),
    };
    let has_gauge = scrape
        .values
        .keys()
        .any(|k| k.starts_with("pushlab_socket_kernel_bytes"));
    if !has_gauge && target_is_local(target) {
        scrape.ss_kernel_bytes = ss_kernel_bytes(target.addr.port()).await;
    }
    Ok(Some(scrape))
}

/// The cost of every distinct target (server replicas) as one scrape: each value summed over
/// the replicas (CPU seconds, RSS, heap, socket memory and byte counters are per process, so
/// the sum is the deployment's); the CPU source is the first replica's. `--server-pid` applies
/// to the first target only. `None` when the first target has no `/metrics`.
pub async fn cost_all(
    targets: &[Target],
    server_pid: Option<u32>,
) -> Result<Option<Scrape>, LoadgenError> {
    let mut seen = Vec::new();
    let mut total: Option<Scrape> = None;
    for (i, t) in targets.iter().enumerate() {
        if seen.contains(&t.addr) {
            continue;
        }
        seen.push(t.addr);
        let one = cost(t, if i == 0 { server_pid } else { None }).await?;
        total = match (total, one) {
            (None, one) if i == 0 => one,
            (None, _) => None,
            (Some(_), None) => {
                return Err(LoadgenError::Other(format!(
                    "{} has no /metrics but {} does: replicas of one run must be the same server",
                    t.url, targets[0].url
                )))
            }
            (Some(acc), Some(one)) => Some(acc.plus(&one)),
        };
        if total.is_none() {
            break;
        }
    }
    Ok(total)
}

impl Scrape {
    /// Two replicas' scrapes as one: every value and the `ss` figure summed.
    pub fn plus(mut self, other: &Scrape) -> Scrape {
        for (k, v) in &other.values {
            *self.values.entry(k.clone()).or_insert(0.0) += v;
        }
        self.ss_kernel_bytes = match (self.ss_kernel_bytes, other.ss_kernel_bytes) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_scrapes_add_up() {
        let a = Scrape::parse(
            "process_cpu_seconds_total 1.5\npushlab_bytes_read_total{transport=\"ws\"} 100\n",
        );
        let b = Scrape::parse("process_cpu_seconds_total 0.5\npushlab_bytes_read_total{transport=\"ws\"} 20\npushlab_heap_bytes 7\n");
        let s = a.plus(&b);
        assert_eq!(s.cpu_seconds(), Some(2.0));
        assert_eq!(s.by_transport("pushlab_bytes_read_total", "ws"), Some(120));
        assert_eq!(s.heap_bytes(), Some(7));
    }

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
        assert_eq!(
            s.cpu_source,
            CpuSource::ProcStat,
            "no HELP naming getrusage"
        );
        assert_eq!(s.heap_bytes(), None);
        let s = Scrape::parse(
            "# HELP process_cpu_seconds_total User and system CPU time spent in seconds (getrusage, microseconds).\nprocess_cpu_seconds_total 1.250321\npushlab_heap_bytes 5242880\npushlab_socket_kernel_bytes{transport=\"ws\"} 1310720\n",
        );
        assert_eq!(s.cpu_source, CpuSource::Getrusage);
        assert_eq!(s.cpu_seconds(), Some(1.250321));
        assert_eq!(s.heap_bytes(), Some(5_242_880));
        assert_eq!(s.kernel_socket_bytes("ws"), Some(1_310_720));
        assert_eq!(s.kernel_socket_bytes("sse"), None);
    }

    /// A fake `/proc`: `pid -> (ppid, [schedstat ns per thread], rss pages)`.
    fn fake_proc(dir: &Path, procs: &[(u32, u32, &[u64], u64)]) {
        for &(pid, ppid, threads, pages) in procs {
            let p = dir.join(pid.to_string());
            std::fs::create_dir_all(p.join("task")).unwrap();
            std::fs::write(
                p.join("stat"),
                format!("{pid} (a) b) S {ppid} 1 1 0 -1 0 0 0 0 0 7 7 0 0"),
            )
            .unwrap();
            std::fs::write(p.join("statm"), format!("100 {pages} 5 1 0 9 0\n")).unwrap();
            for (i, ns) in threads.iter().enumerate() {
                let t = p.join("task").join((pid + i as u32).to_string());
                std::fs::create_dir_all(&t).unwrap();
                std::fs::write(t.join("schedstat"), format!("{ns} 12345 67\n")).unwrap();
            }
        }
        std::fs::create_dir_all(dir.join("self")).unwrap();
    }

    #[test]
    fn schedstat_is_summed_over_threads_and_descendants() {
        let dir = std::env::temp_dir().join(format!("pushlab-fake-proc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // 10 (master) -> 11, 12 (workers, 12 with two threads); 20 is someone else's.
        fake_proc(
            &dir,
            &[
                (10, 1, &[1_000], 1),
                (11, 10, &[20_000_001], 2),
                (12, 10, &[300, 4_000], 3),
                (20, 1, &[999_999_999], 4),
            ],
        );
        let u = tree_usage(&dir, 10).unwrap();
        // SAFETY: sysconf only reads a constant.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
        assert_eq!(u.cpu_ns, 1_000 + 20_000_001 + 300 + 4_000);
        assert_eq!(u.rss_bytes, 6 * page);
        assert_eq!(u.processes, 3);
        assert_eq!(tree_usage(&dir, 99), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_process_tree_is_costed_from_proc() {
        let me = std::process::id();
        let s = Scrape::from_proc(me).unwrap();
        assert_eq!(s.proc_pid, Some(me));
        assert_eq!(s.cpu_source, CpuSource::Schedstat);
        assert!(s.rss_bytes().unwrap() > 0);
        // Any CPU at all moves it: nanoseconds, not 10 ms ticks.
        let a = s.cpu_seconds().unwrap();
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < std::time::Duration::from_millis(2) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let b = Scrape::from_proc(me).unwrap().cpu_seconds().unwrap();
        assert!(b > a, "{a} -> {b} after {x} additions");
        // A child counts under its parent (nginx's workers under the master or run.sh).
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let tree = process_tree(me, &proc_table(Path::new("/proc")));
        let _ = child.kill();
        let _ = child.wait();
        assert!(tree.contains(&me) && tree.contains(&child.id()), "{tree:?}");
        assert!(Scrape::from_proc(u32::MAX).is_none());
    }

    #[test]
    fn skmem_is_summed_as_the_server_sums_it() {
        let out = "ESTAB 0 0 127.0.0.1:80 127.0.0.1:5000\n\t skmem:(r10,rb131072,t3,tb16384,f4086,w5,o6,bl7,d0)\nESTAB 0 0 127.0.0.1:80 127.0.0.1:5001\n\t skmem:(r0,rb131072,t0,tb16384,f4096,w0,o0,bl0,d9)\n";
        assert_eq!(sum_skmem(out), (2, 10 + 4086 + 5 + 6 + 7 + 4096));
        assert_eq!(sum_skmem(""), (0, 0));
    }
}
