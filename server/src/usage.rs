//! What the server costs the machine, read precisely enough to divide by one delivery or one
//! connection: CPU from `getrusage(2)` (microseconds, not `/proc`'s 10 ms ticks), heap bytes
//! in use from a counting global allocator, and the kernel's socket memory of each open
//! connection from `SO_MEMINFO` (the `skmem` that `ss -m` prints).
//!
//! ```text
//! process_cpu_seconds_total 1.234567
//! pushlab_heap_bytes 5242880
//! pushlab_socket_kernel_bytes{transport="ws"} 1310720
//! ```
//!
//! The allocator only counts where a binary installs it (`pushlab-server` and
//! `pushlab-loadgen`, whose `serve` child is the embedded server):
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOC: pushlab_server::usage::CountingAlloc = pushlab_server::usage::CountingAlloc;
//! ```
//!
//! Why a counting allocator rather than RSS alone: RSS only grows where the allocator asks the
//! kernel for pages, so memory freed by an earlier phase and reused by the next hides that
//! phase's cost; bytes in use say what live connections hold, whatever came before.

use std::alloc::{GlobalAlloc, Layout};

use mimalloc::MiMalloc as Inner;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

static HEAP_IN_USE: AtomicI64 = AtomicI64::new(0);
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// mimalloc, counting the bytes it has handed out and not yet taken back.
/// One relaxed atomic add per allocation and per free.
pub struct CountingAlloc;

// SAFETY: every call is forwarded to mimalloc unchanged; the counter has no effect on memory.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which we pass on.
        let p = unsafe { Inner.alloc(layout) };
        if !p.is_null() {
            count(layout.size() as i64);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { Inner.alloc_zeroed(layout) };
        if !p.is_null() {
            count(layout.size() as i64);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as for `alloc`; `ptr` came from mimalloc through us.
        unsafe { Inner.dealloc(ptr, layout) };
        HEAP_IN_USE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { Inner.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            count(new_size as i64 - layout.size() as i64);
        }
        p
    }
}

#[inline]
fn count(delta: i64) {
    HEAP_IN_USE.fetch_add(delta, Ordering::Relaxed);
    if !INSTALLED.load(Ordering::Relaxed) {
        INSTALLED.store(true, Ordering::Relaxed);
    }
}

/// Heap bytes in use (requested sizes, not the allocator's rounding or its free lists), or
/// `None` where this binary did not install [`CountingAlloc`].
pub fn heap_bytes() -> Option<u64> {
    INSTALLED
        .load(Ordering::Relaxed)
        .then(|| HEAP_IN_USE.load(Ordering::Relaxed).max(0) as u64)
}

/// User plus system CPU seconds of the whole process, microsecond resolution (`getrusage(2)`,
/// `RUSAGE_SELF`: every thread, live or ended).
pub fn process_cpu_seconds() -> f64 {
    // SAFETY: an all-zero rusage is a valid value; getrusage only writes into it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Resident set size in bytes, from `/proc/self/statm` (0 where /proc is missing).
pub fn rss_bytes() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split(' ').nth(1)?.parse::<u64>().ok())
        .map_or(0, |p| p * page)
}

/// `SO_MEMINFO` (Linux 3.10+, `include/uapi/linux/sock_diag.h`): the kernel's memory
/// accounting of one socket, the `skmem:(r,rb,t,tb,f,w,o,bl,d)` that `ss -m` prints.
const SO_MEMINFO: libc::c_int = 55;
const SK_MEMINFO_VARS: usize = 9;

/// Kernel memory one socket holds now, bytes: receive queue (`rmem_alloc`), send queue
/// (`wmem_queued`), forward allocation (`fwd_alloc`: charged, not yet used), option memory and
/// backlog. The socket's own structures (a `TCP` slab object, ~2.3 KiB, plus file and inode)
/// are not in it. `None` where the descriptor is not a socket or is closed.
pub fn socket_kernel_bytes(fd: RawFd) -> Option<u64> {
    let mut info = [0u32; SK_MEMINFO_VARS];
    let mut len = std::mem::size_of_val(&info) as libc::socklen_t;
    // SAFETY: `info` is writable for `len` bytes; the kernel writes at most `len` and sets it.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            SO_MEMINFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return None;
    }
    // rmem_alloc, rcvbuf, wmem_alloc, sndbuf, fwd_alloc, wmem_queued, optmem, backlog, drops
    let [rmem, _rcvbuf, _wmem_alloc, _sndbuf, fwd, wqueued, optmem, backlog, _drops] = info;
    Some(
        [rmem, fwd, wqueued, optmem, backlog]
            .iter()
            .map(|&v| v as u64)
            .sum(),
    )
}

/// What TCP has sent again on socket `fd` so far, from Linux `TCP_INFO`: (segments
/// `tcpi_total_retrans`, payload bytes `tcpi_bytes_retrans`; RFC 4898 tcpEStatsPerfOctetsRetrans,
/// 0 before Linux 4.19). `None` where the descriptor is not a TCP socket or is closed.
pub fn tcp_retransmissions(fd: RawFd) -> Option<(u64, u64)> {
    // SAFETY: tcp_info is plain data; zeroes are valid (and stay where an older kernel
    // writes less).
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info` is writable for `len` bytes; the kernel writes at most `len` and sets it.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    (rc == 0).then(|| (u64::from(info.tcpi_total_retrans), info.tcpi_bytes_retrans))
}

/// The slab caches one accepted TCP connection holds an object of, besides its queues: the
/// socket (`TCP` or `TCPv6`), its inode (`sock_inode_cache`), file (`filp`), dentry and epoll
/// registration (`eventpoll_epi`).
const SOCKET_SLABS: [&str; 5] = ["TCP", "sock_inode_cache", "filp", "dentry", "eventpoll_epi"];

/// Bytes of kernel objects one open TCP connection holds besides what `SO_MEMINFO` counts: the
/// object sizes of [`SOCKET_SLABS`] in `/proc/slabinfo` (root only), read once. `None` where
/// /proc/slabinfo cannot be read.
pub fn socket_struct_bytes() -> Option<u64> {
    static CACHED: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *CACHED.get_or_init(|| {
        let text = std::fs::read_to_string("/proc/slabinfo").ok()?;
        slab_object_bytes(&text, &SOCKET_SLABS)
    })
}

/// Sum of the `<objsize>` column of the named caches; `None` if any is missing.
fn slab_object_bytes(slabinfo: &str, names: &[&str]) -> Option<u64> {
    names
        .iter()
        .map(|name| {
            slabinfo.lines().find_map(|l| {
                let mut f = l.split_whitespace();
                (f.next()? == *name).then_some(())?;
                f.nth(2)?.parse::<u64>().ok()
            })
        })
        .sum()
}

#[cfg(test)]
mod tests {
    #[test]
    fn slab_object_sizes_are_summed_by_name() {
        let text = "slabinfo - version: 2.1\n\
            TCP 26 26 2368 13 8 : tunables 0 0 0 : slabdata 2 2 0\n\
            filp 1554 1554 192 21 1 : tunables 0 0 0 : slabdata 74 74 0\n";
        assert_eq!(slab_object_bytes(text, &["TCP", "filp"]), Some(2560));
        assert_eq!(slab_object_bytes(text, &["TCP", "dentry"]), None);
    }

    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;

    #[test]
    fn cpu_is_finer_than_a_clock_tick() {
        let a = process_cpu_seconds();
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < std::time::Duration::from_millis(3) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        let b = process_cpu_seconds();
        // 3 ms of spinning is under one 10 ms tick; getrusage still sees it.
        assert!(b > a, "{a} -> {b}");
        assert!(b - a < 1.0);
    }

    #[test]
    fn a_socket_with_unread_bytes_holds_kernel_memory() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        let idle = socket_kernel_bytes(server.as_raw_fd()).expect("a socket");
        client.write_all(&[7u8; 10_000]).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let queued = socket_kernel_bytes(server.as_raw_fd()).expect("a socket");
        assert!(queued >= idle + 10_000, "{idle} -> {queued}");
        let mut buf = vec![0u8; 10_000];
        server.read_exact(&mut buf).unwrap();
        // Not a socket: no figure.
        let file = std::fs::File::open("/proc/self/statm").unwrap();
        assert_eq!(socket_kernel_bytes(file.as_raw_fd()), None);
    }
}
