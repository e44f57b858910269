//! Sockets for many clients: the open-file limit, source addresses, TCP_INFO, and the one
//! clock every timestamp of a run is read from.

use std::fs::File;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::net::{TcpSocket, TcpStream};

/// Raises RLIMIT_NOFILE's soft limit to the hard limit; returns the soft limit now in force.
pub fn raise_nofile_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1024;
    }
    if lim.rlim_cur < lim.rlim_max {
        let want = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads the struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) } == 0 {
            lim.rlim_cur = lim.rlim_max;
        }
    }
    #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 on every target
    {
        lim.rlim_cur as u64
    }
}

/// Which side of an emulated link (`--link`) a socket belongs to. Without a link both are
/// this process's own network namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// Subscribers: the client side of the link.
    Client,
    /// The publisher, scrapes and probes: next to the server (a publisher is a backend).
    Server,
}

/// The two sides' network namespaces while a run goes through a link (`/run/netns/NAME`
/// opened); `None` the rest of the time.
static LINK_NAMESPACES: Mutex<Option<[Arc<File>; 2]>> = Mutex::new(None);

/// Makes every socket [`connect`] opens from now on live in the link's namespaces (`client`
/// for [`Side::Client`], `server` for [`Side::Server`]); `None` puts them back into this
/// process's namespace. Errors: a namespace that cannot be opened.
pub fn use_link_namespaces(names: Option<(&str, &str)>) -> io::Result<()> {
    let files = match names {
        None => None,
        Some((client, server)) => {
            let open = |n: &str| File::open(format!("/run/netns/{n}")).map(Arc::new);
            Some([open(client)?, open(server)?])
        }
    };
    *LINK_NAMESPACES.lock().unwrap_or_else(|p| p.into_inner()) = files;
    Ok(())
}

/// A TCP socket for `addr`, born in `side`'s link namespace when a link is in use. A socket's
/// namespace is fixed when it is created, so it is created on a short-lived thread that has
/// joined the namespace (`setns(CLONE_NEWNET)`); connecting it afterwards works from any
/// thread.
fn new_socket(addr: SocketAddr, side: Side) -> io::Result<TcpSocket> {
    let make = move || {
        if addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
    };
    let ns = LINK_NAMESPACES
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .map(|f| f[usize::from(side == Side::Server)].clone());
    let Some(ns) = ns else {
        return make();
    };
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: setns on a descriptor we hold open; it changes only this thread.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
            make()
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("namespace thread panicked")))
    })
}

/// Connects to `addr` from `side`, first binding to `source` when given (to spread sockets
/// over several loopback addresses and pass the ephemeral-port limit of one). Sets
/// TCP_NODELAY, as browsers do, so latency is the transport's and not Nagle's.
pub async fn connect_from(
    side: Side,
    addr: SocketAddr,
    source: Option<IpAddr>,
) -> io::Result<TcpStream> {
    let socket = new_socket(addr, side)?;
    if let Some(ip) = source {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// [`connect_from`] the server side (the publisher, scrapes; without a link, this process).
pub async fn connect(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpStream> {
    connect_from(Side::Server, addr, source).await
}

/// What a socket's `TCP_INFO` says just before it closes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpTotals {
    /// Segments sent and received (`tcpi_segs_out`, `tcpi_segs_in`), including SYN, FIN, pure
    /// ACKs and retransmissions.
    pub segments: (u64, u64),
    /// What this socket's sender sent again.
    pub retransmissions: TcpRetransmissions,
}

/// Segments a socket sent and received (see [`TcpTotals::segments`]). `None` off Linux or on
/// error.
pub fn tcp_segments(stream: &TcpStream) -> Option<(u64, u64)> {
    tcp_totals(stream).map(|t| t.segments)
}

/// The segment counts and retransmissions of a socket, from Linux `TCP_INFO`. `None` off Linux
/// or on error.
pub fn tcp_totals(stream: &TcpStream) -> Option<TcpTotals> {
    tcp_info(stream).map(|info| TcpTotals {
        segments: info.segs,
        retransmissions: info.retransmissions,
    })
}

/// What a socket's sender has retransmitted so far, from Linux `TCP_INFO`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpRetransmissions {
    /// Segments sent again (`tcpi_total_retrans`: timeouts, fast and tail-loss-probe
    /// retransmissions, SYN/SYN-ACK included).
    pub segments: u64,
    /// Payload bytes sent again (`tcpi_bytes_retrans`, RFC 4898 tcpEStatsPerfOctetsRetrans;
    /// Linux 4.19+, 0 before).
    pub bytes: u64,
}

/// The retransmissions of the socket behind `fd` (a std or tokio `TcpStream`), for the
/// `retransmitted` share of the byte split (issue 11). `None` off Linux or on error.
pub fn tcp_retransmissions(fd: &impl std::os::fd::AsRawFd) -> Option<TcpRetransmissions> {
    tcp_info(fd).map(|info| info.retransmissions)
}

/// The fields of `TCP_INFO` the loadgen reads.
struct TcpInfo {
    /// (sent, received) segments.
    segs: (u64, u64),
    retransmissions: TcpRetransmissions,
}

fn tcp_info(fd: &impl std::os::fd::AsRawFd) -> Option<TcpInfo> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: tcp_info is plain data; zeroes are a valid value (and stay in fields an
        // older kernel does not fill).
        let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        // SAFETY: the fd is open for the lifetime of the borrow; info and len are ours.
        let rc = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_INFO,
                (&mut info as *mut libc::tcp_info).cast(),
                &mut len,
            )
        };
        if rc != 0 {
            return None;
        }
        Some(TcpInfo {
            segs: (info.tcpi_segs_out as u64, info.tcpi_segs_in as u64),
            retransmissions: TcpRetransmissions {
                segments: u64::from(info.tcpi_total_retrans),
                bytes: info.tcpi_bytes_retrans,
            },
        })
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = fd;
        None
    }
}

/// TCP/IP header bytes per segment assumed for the `tcpip` share of the byte split: a 20-byte
/// IPv4 header plus a 20-byte TCP header plus the 12-byte timestamp option Linux puts on every
/// segment of a connection that negotiated it (it does by default, on loopback too). SYNs
/// carry a few more option bytes and IPv6 adds 20; both are ignored, so the figure is an
/// estimate, not a count. Link-layer bytes (Ethernet's 14 + 4, none on loopback) are left out.
pub const TCPIP_HEADER_BYTES_PER_SEGMENT: u64 = 52;

/// Nanoseconds since the Unix epoch, read from a monotonic clock anchored once to the wall
/// clock, so the publisher's schedule and every receive time share one clock that never jumps.
pub fn now_ns() -> u64 {
    let (instant, wall_ns) = anchor();
    wall_ns + instant.elapsed().as_nanos() as u64
}

/// The epoch-ns value of a monotonic instant on the same clock as [`now_ns`].
pub fn instant_ns(at: Instant) -> u64 {
    let (instant, wall_ns) = anchor();
    match at.checked_duration_since(*instant) {
        Some(d) => wall_ns + d.as_nanos() as u64,
        None => wall_ns.saturating_sub(instant.duration_since(at).as_nanos() as u64),
    }
}

fn anchor() -> &'static (Instant, u64) {
    static ANCHOR: OnceLock<(Instant, u64)> = OnceLock::new();
    ANCHOR.get_or_init(|| {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        (Instant::now(), wall)
    })
}

/// RFC 3339 UTC for a wall-clock time (no leap seconds, as the Unix clock).
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
            "2023-11-14T22:13:20Z"
        );
    }

    #[test]
    fn clock_is_monotonic_and_near_the_wall() {
        let a = now_ns();
        let b = now_ns();
        assert!(b >= a);
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        assert!(wall.abs_diff(b) < 5_000_000_000);
        let i = Instant::now();
        assert!(instant_ns(i) >= b);
    }
}

#[cfg(test)]
mod connect_tests {
    use super::*;

    /// The socket's family follows the target: an IPv6 target (`[::1]`) gets an IPv6 socket,
    /// from either side and with or without a source address (no link in use here).
    #[tokio::test]
    async fn connects_to_ipv4_and_ipv6_loopback() {
        let targets: [(&str, Option<IpAddr>); 4] = [
            ("127.0.0.1:0", None),
            ("127.0.0.1:0", Some("127.0.0.1".parse().unwrap())),
            ("[::1]:0", None),
            ("[::1]:0", Some("::1".parse().unwrap())),
        ];
        for (bind, source) in targets {
            let Ok(listener) = tokio::net::TcpListener::bind(bind).await else {
                eprintln!("SKIPPED {bind}: this host has no such loopback");
                continue;
            };
            let addr = listener.local_addr().unwrap();
            for side in [Side::Client, Side::Server] {
                let stream = connect_from(side, addr, source).await.unwrap();
                let (accepted, peer) = listener.accept().await.unwrap();
                assert_eq!(stream.peer_addr().unwrap(), addr);
                assert_eq!(peer, stream.local_addr().unwrap());
                assert!(stream.nodelay().unwrap());
                drop(accepted);
            }
        }
    }
}
