//! The packet pump: per direction, a reader thread takes each IP packet from one side's TUN
//! device, asks the [`Shaper`] for its fate, and puts it on a delay line (a deadline heap); a
//! writer thread writes it into the other side's TUN device when it is due.
//!
//! Why threads and not tokio: tokio's timer wheel has 1 ms slots, too coarse for a delay that
//! must be right within 0.5 ms. The writer sleeps on a condition variable (a futex with a
//! high-resolution timeout, the thread's timer slack set to 1 ns) until [`SPIN`] before the
//! deadline, then spins for the rest. How late each packet actually left is recorded in an HDR
//! histogram ([`DirectionReport::late_ns`]) so the accuracy is measured, not assumed. Both
//! threads run SCHED_FIFO where allowed, so other work on the machine does not delay them.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::shaper::{Fate, Shaper};

/// The writer spins (instead of sleeping) for at most this long before a deadline.
pub const SPIN: Duration = Duration::from_micros(100);
/// Packets in flight on one direction's delay line at most; beyond it a packet is dropped and
/// counted in `overflow` (bounds memory at about 100 MB when nothing limits the rate).
pub const MAX_IN_FLIGHT: usize = 65_536;
/// How often idle threads look at the stop flag.
const IDLE_CHECK: Duration = Duration::from_millis(50);

/// Live counters of one direction (read while the link runs).
#[derive(Debug, Default)]
pub struct DirectionCounters {
    pub packets_in: AtomicU64,
    pub bytes_in: AtomicU64,
    pub lost_packets: AtomicU64,
    pub queue_full_packets: AtomicU64,
    pub overflow_packets: AtomicU64,
    pub packets_out: AtomicU64,
    pub bytes_out: AtomicU64,
    pub write_errors: AtomicU64,
}

/// One direction after the link stopped.
#[derive(Debug)]
pub struct DirectionReport {
    /// `client->server` or `server->client`.
    pub name: &'static str,
    pub packets_in: u64,
    pub bytes_in: u64,
    /// Dropped by the loss model.
    pub lost_packets: u64,
    /// Dropped by the full drop-tail queue.
    pub queue_full_packets: u64,
    /// Dropped because [`MAX_IN_FLIGHT`] packets were already on the delay line.
    pub overflow_packets: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
    /// Packets the far side's TUN device refused.
    pub write_errors: u64,
    /// How late each packet was written versus its due instant, nanoseconds.
    pub late_ns: Histogram<u64>,
    /// CPU time of this direction's two threads, nanoseconds.
    pub cpu_ns: u64,
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Pending {
    due: Instant,
    seq: u64,
    packet: Vec<u8>,
}

#[derive(Default)]
struct DelayLine {
    heap: Mutex<BinaryHeap<Reverse<Pending>>>,
    ready: Condvar,
}

/// A running direction.
pub struct Direction {
    name: &'static str,
    pub counters: Arc<DirectionCounters>,
    line: Arc<DelayLine>,
    reader: JoinHandle<u64>,
    writer: JoinHandle<(Histogram<u64>, u64)>,
}

impl Direction {
    /// Starts pumping packets read from `from` into `to` through `shaper` until `stop`.
    pub fn spawn(
        name: &'static str,
        from: Arc<File>,
        to: Arc<File>,
        shaper: Shaper,
        stop: Arc<AtomicBool>,
    ) -> io::Result<Direction> {
        let counters = Arc::new(DirectionCounters::default());
        let line = Arc::new(DelayLine::default());
        let reader = {
            let (c, l, s) = (counters.clone(), line.clone(), stop.clone());
            std::thread::Builder::new()
                .name(format!("link-rx {name}"))
                .spawn(move || read_loop(&from, shaper, &l, &c, &s))?
        };
        let writer = {
            let (c, l) = (counters.clone(), line.clone());
            std::thread::Builder::new()
                .name(format!("link-tx {name}"))
                .spawn(move || write_loop(&to, &l, &c, &stop))?
        };
        Ok(Direction {
            name,
            counters,
            line,
            reader,
            writer,
        })
    }

    /// Waits for both threads (the caller has set the stop flag) and reports.
    pub fn join(self) -> DirectionReport {
        self.line.ready.notify_all();
        let reader_cpu_ns = self.reader.join().unwrap_or(0);
        let (late_ns, writer_cpu_ns) = self.writer.join().unwrap_or_else(|_| (new_histogram(), 0));
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        DirectionReport {
            name: self.name,
            packets_in: get(&c.packets_in),
            bytes_in: get(&c.bytes_in),
            lost_packets: get(&c.lost_packets),
            queue_full_packets: get(&c.queue_full_packets),
            overflow_packets: get(&c.overflow_packets),
            packets_out: get(&c.packets_out),
            bytes_out: get(&c.bytes_out),
            write_errors: get(&c.write_errors),
            late_ns,
            cpu_ns: reader_cpu_ns + writer_cpu_ns,
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new(3).expect("3 significant figures is a valid histogram")
}

/// Reads packets until `stop`; returns the thread's CPU time, ns.
fn read_loop(
    from: &File,
    mut shaper: Shaper,
    line: &DelayLine,
    counters: &DirectionCounters,
    stop: &AtomicBool,
) -> u64 {
    realtime_priority();
    let mut buf = vec![0u8; 65_536];
    let mut seq = 0u64;
    let mut from = from;
    while !stop.load(Ordering::Relaxed) {
        if !readable(from, IDLE_CHECK) {
            continue;
        }
        let n = match from.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let now = Instant::now();
        counters.packets_in.fetch_add(1, Ordering::Relaxed);
        counters.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
        match shaper.admit(now, n as u32) {
            Fate::Lost => {
                counters.lost_packets.fetch_add(1, Ordering::Relaxed);
            }
            Fate::QueueFull => {
                counters.queue_full_packets.fetch_add(1, Ordering::Relaxed);
            }
            Fate::DeliverAt(due) => {
                let mut heap = line.heap.lock().unwrap_or_else(|p| p.into_inner());
                if heap.len() >= MAX_IN_FLIGHT {
                    counters.overflow_packets.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                seq += 1;
                heap.push(Reverse(Pending {
                    due,
                    seq,
                    packet: buf[..n].to_vec(),
                }));
                drop(heap);
                line.ready.notify_one();
            }
        }
    }
    thread_cpu_ns()
}

/// Writes packets as they fall due until `stop`; returns lateness and the thread's CPU time.
fn write_loop(
    to: &File,
    line: &DelayLine,
    counters: &DirectionCounters,
    stop: &AtomicBool,
) -> (Histogram<u64>, u64) {
    // SAFETY: prctl(PR_SET_TIMERSLACK) only changes this thread's timer slack.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
    realtime_priority();
    let mut late = new_histogram();
    let mut due_now: Vec<Pending> = Vec::new();
    let mut to = to;
    while !stop.load(Ordering::Relaxed) {
        let mut heap = line.heap.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        match heap.peek().map(|p| p.0.due) {
            None => {
                drop(line.ready.wait_timeout(heap, IDLE_CHECK));
                continue;
            }
            Some(due) if due > now + SPIN => {
                let nap = (due - now - SPIN).min(IDLE_CHECK);
                drop(line.ready.wait_timeout(heap, nap));
                continue;
            }
            Some(due) if due > now => {
                drop(heap);
                // Bounded by SPIN: the deadline is less than SPIN away.
                while Instant::now() < due {
                    std::hint::spin_loop();
                }
                continue;
            }
            Some(_) => {}
        }
        while heap.peek().is_some_and(|p| p.0.due <= now) {
            if let Some(Reverse(p)) = heap.pop() {
                due_now.push(p);
            }
        }
        drop(heap);
        for p in due_now.drain(..) {
            let lateness = Instant::now().saturating_duration_since(p.due);
            late.saturating_record(lateness.as_nanos() as u64);
            // A TUN write takes a whole packet or fails; a short count would be a failure.
            match to.write(&p.packet) {
                Ok(n) if n == p.packet.len() => {
                    counters.packets_out.fetch_add(1, Ordering::Relaxed);
                    counters.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
                }
                _ => {
                    counters.write_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
    (late, thread_cpu_ns())
}

/// Puts the calling thread in the SCHED_FIFO class (best effort: where it is refused the
/// thread stays in the normal class), so a busy machine's compile jobs do not delay a packet by
/// a scheduler slice. Every loop here blocks or spins for at most [`SPIN`], and the kernel's
/// real-time throttling caps such threads anyway.
fn realtime_priority() {
    let param = libc::sched_param { sched_priority: 10 };
    // SAFETY: sched_setscheduler on the calling thread (0) with a valid param.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
}

/// Waits up to `timeout` for `file` to have a packet.
fn readable(file: &File, timeout: Duration) -> bool {
    let mut fds = libc::pollfd {
        fd: file.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll on one pollfd we own.
    let n = unsafe { libc::poll(&mut fds, 1, timeout.as_millis() as libc::c_int) };
    n > 0 && fds.revents & libc::POLLIN != 0
}

/// CPU time the calling thread has used, ns.
pub fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
