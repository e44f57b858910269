//! The loadgen's own cost over one phase: its CPU (`getrusage(RUSAGE_SELF)`, microseconds) as a
//! share of one core, and how late its timers fire. A probe task on the loadgen's runtime
//! sleeps 1 ms at a time and records how far past its deadline each wake-up came:
//!
//! ```text
//! deadline = now + 1 ms; sleep_until(deadline); late = now - deadline  (repeat)
//! ```
//!
//! Tokio's timer wheel ticks in milliseconds, so a wake-up up to 1 ms late is the wheel's
//! granularity; later than [`LoadgenCost::LATE_TIMER_US`] means the runtime's threads were busy
//! or off CPU, and subscribers stamped their arrival times that late too. Then, or when the
//! loadgen kept more than [`LoadgenCost::SATURATED_CORE_SHARE`] of a core busy, the phase's
//! figures may be the loadgen's as much as the target's: [`LoadgenCost::saturated`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use pushlab_proto::result::LoadgenCost;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The probe's sleep.
const PROBE_PERIOD: Duration = Duration::from_millis(1);
/// At most this many probe wake-ups per phase (an hour of 1 ms sleeps): the loop is bounded.
const MAX_PROBES: u64 = 3_600_000;

/// CPU microseconds (user + system) this process has used, from `getrusage(RUSAGE_SELF)`.
pub fn process_cpu_us() -> f64 {
    // SAFETY: an all-zero rusage is a valid value; getrusage only writes into it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0.0;
    }
    let us = |t: libc::timeval| t.tv_sec as f64 * 1e6 + t.tv_usec as f64;
    us(ru.ru_utime) + us(ru.ru_stime)
}

/// A running probe; [`SelfCostProbe::finish`] ends it and returns the phase's cost.
#[derive(Debug)]
pub struct SelfCostProbe {
    cpu_us_at_start: f64,
    started: Instant,
    stop: Arc<AtomicBool>,
    task: JoinHandle<Histogram<u64>>,
}

impl SelfCostProbe {
    /// Starts the timer probe on the current runtime.
    pub fn start() -> SelfCostProbe {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut late_us =
                Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("static bounds");
            for _ in 0..MAX_PROBES {
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                let deadline = Instant::now() + PROBE_PERIOD;
                tokio::time::sleep_until(deadline).await;
                let late = Instant::now().saturating_duration_since(deadline);
                late_us.saturating_record((late.as_micros() as u64).max(1));
            }
            late_us
        });
        SelfCostProbe {
            cpu_us_at_start: process_cpu_us(),
            started: Instant::now(),
            stop,
            task,
        }
    }

    /// Stops the probe and returns the cost since [`SelfCostProbe::start`].
    pub async fn finish(self) -> LoadgenCost {
        let cpu_us = process_cpu_us() - self.cpu_us_at_start;
        let wall_s = self.started.elapsed().as_secs_f64();
        self.stop.store(true, Ordering::Relaxed);
        let late = self.task.await.unwrap_or_else(|_| {
            Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("static bounds")
        });
        loadgen_cost(cpu_us, wall_s, &late)
    }
}

/// The cost from its readings (pure): `late_us` holds one sample per probe wake-up, µs.
pub fn loadgen_cost(cpu_us: f64, wall_s: f64, late_us: &Histogram<u64>) -> LoadgenCost {
    let core_share = if wall_s > 0.0 {
        cpu_us / (wall_s * 1e6)
    } else {
        0.0
    };
    let (p99, max) = if late_us.is_empty() {
        (0, 0)
    } else {
        (late_us.value_at_quantile(0.99), late_us.max())
    };
    LoadgenCost {
        cpu_us,
        wall_s,
        core_share,
        timer_late_p99_us: p99,
        timer_late_max_us: max,
        saturated: core_share > LoadgenCost::SATURATED_CORE_SHARE
            || max > LoadgenCost::LATE_TIMER_US,
    }
}

/// The note a saturated phase carries (`None` when it was not).
pub fn saturation_note(c: &LoadgenCost) -> Option<String> {
    c.saturated.then(|| {
        format!(
            "the loadgen was saturated (CPU {:.0} % of a core, timers up to {} us late; limits {:.0} % and {} us): this phase's latency and rates may be the loadgen's own",
            c.core_share * 100.0,
            c.timer_late_max_us,
            LoadgenCost::SATURATED_CORE_SHARE * 100.0,
            LoadgenCost::LATE_TIMER_US
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(samples: &[u64]) -> Histogram<u64> {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        for &s in samples {
            h.record(s).unwrap();
        }
        h
    }

    #[test]
    fn saturated_on_either_limit_and_not_below() {
        let calm = loadgen_cost(500_000.0, 2.0, &hist(&[10, 200, 900]));
        assert_eq!(calm.core_share, 0.25);
        assert_eq!(calm.timer_late_max_us, 900);
        assert!(!calm.saturated);
        assert_eq!(saturation_note(&calm), None);
        let busy = loadgen_cost(1_500_000.0, 2.0, &hist(&[10]));
        assert!(busy.saturated, "75 % of a core");
        let late = loadgen_cost(100_000.0, 2.0, &hist(&[10, 1_500]));
        assert!(late.saturated, "a timer 1.5 ms late");
        assert!(saturation_note(&late).unwrap().contains("1500 us late"));
        let empty = loadgen_cost(0.0, 0.0, &hist(&[]));
        assert_eq!((empty.core_share, empty.timer_late_p99_us), (0.0, 0));
    }

    #[tokio::test]
    async fn the_probe_reads_this_process() {
        let probe = SelfCostProbe::start();
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(5) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        let c = probe.finish().await;
        assert!(c.cpu_us > 0.0 && c.wall_s > 0.0, "{c:?} after {x}");
    }
}
