//! What one direction of the link does to each packet, as pure logic over a clock the caller
//! passes in (so it is unit-tested without sockets or sleeps): a loss draw, then a drop-tail
//! queue in front of a bottleneck of fixed rate, then the propagation delay with its jitter.
//!
//! The bottleneck is computed, not simulated with timers: a packet arriving at `now` starts
//! serializing when the link is free (`max(now, previous packet's end)`) and takes
//! `bytes * 8 / rate` seconds; the queue holds every packet whose serialization has not ended.
//! The packet then propagates for `rtt/2 ± jitter` and is due at the far end at the returned
//! instant (mahimahi's link shell followed by its delay shell).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::spec::{LinkSpec, QueueLimit};

/// What becomes of a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Write it to the far end at this instant.
    DeliverAt(Instant),
    /// Dropped by the loss model.
    Lost,
    /// Dropped because the bottleneck's queue was full (drop-tail).
    QueueFull,
}

/// Independent (Bernoulli) or bursty (Gilbert: every packet in the bad state is lost) loss.
#[derive(Clone, Debug)]
pub enum LossModel {
    None,
    Bernoulli {
        p: f64,
    },
    /// Moves good->bad with `p_enter`, bad->good with `p_leave`; mean loss
    /// `p_enter / (p_enter + p_leave)`, mean burst `1 / p_leave` packets.
    Gilbert {
        p_enter: f64,
        p_leave: f64,
        bad: bool,
    },
}

impl LossModel {
    /// The model for a mean `loss` fraction and, if given, a mean burst length in packets.
    pub fn new(loss: f64, burst_packets: Option<f64>) -> LossModel {
        match burst_packets {
            _ if loss <= 0.0 => LossModel::None,
            Some(b) if loss < 1.0 && b > 1.0 => {
                let p_leave = 1.0 / b;
                LossModel::Gilbert {
                    p_enter: (loss * p_leave / (1.0 - loss)).min(1.0),
                    p_leave,
                    bad: false,
                }
            }
            _ => LossModel::Bernoulli { p: loss },
        }
    }

    /// Draws the next packet's fate; `uniform` is a draw in `[0, 1)`.
    pub fn lose(&mut self, uniform: f64) -> bool {
        match self {
            LossModel::None => false,
            LossModel::Bernoulli { p } => uniform < *p,
            LossModel::Gilbert {
                p_enter,
                p_leave,
                bad,
            } => {
                let flip = if *bad { *p_leave } else { *p_enter };
                if uniform < flip {
                    *bad = !*bad;
                }
                *bad
            }
        }
    }
}

/// One direction's state.
pub struct Shaper {
    one_way: Duration,
    jitter: Duration,
    reorder: bool,
    loss: LossModel,
    rate_bit_per_s: Option<u64>,
    queue: QueueLimit,
    /// (serialization end, bytes) of each packet still in the bottleneck, oldest first.
    backlog: VecDeque<(Instant, u32)>,
    backlog_bytes: u64,
    last_due: Option<Instant>,
    rng: oorandom::Rand64,
}

impl Shaper {
    /// `stream` tells the two directions' random draws apart under one seed.
    pub fn new(spec: &LinkSpec, stream: u64) -> Shaper {
        Shaper {
            one_way: spec.rtt / 2,
            jitter: spec.jitter,
            reorder: spec.reorder,
            loss: LossModel::new(spec.loss, spec.loss_burst_packets),
            rate_bit_per_s: spec.rate_bit_per_s,
            queue: spec.queue,
            backlog: VecDeque::new(),
            backlog_bytes: 0,
            last_due: None,
            rng: oorandom::Rand64::new(u128::from(spec.seed) << 64 | u128::from(stream)),
        }
    }

    /// The fate of a packet of `bytes` (whole IP packet) that arrived at `now`.
    pub fn admit(&mut self, now: Instant, bytes: u32) -> Fate {
        if self.loss.lose(self.rng.rand_float()) {
            return Fate::Lost;
        }
        let sent = match self.rate_bit_per_s {
            None => now,
            Some(rate) => match self.serialize(now, bytes, rate) {
                Some(end) => end,
                None => return Fate::QueueFull,
            },
        };
        let mut due = sent + self.one_way;
        if !self.jitter.is_zero() {
            let j = self.jitter.as_secs_f64() * (2.0 * self.rng.rand_float() - 1.0);
            due = if j >= 0.0 {
                due + Duration::from_secs_f64(j)
            } else {
                due.checked_sub(Duration::from_secs_f64(-j))
                    .unwrap_or(sent)
                    .max(sent)
            };
        }
        if !self.reorder {
            if let Some(last) = self.last_due {
                due = due.max(last);
            }
        }
        self.last_due = Some(due);
        Fate::DeliverAt(due)
    }

    /// Enqueues at the bottleneck; the instant its last bit leaves, or None when the queue is
    /// full.
    fn serialize(&mut self, now: Instant, bytes: u32, rate: u64) -> Option<Instant> {
        while let Some(&(end, b)) = self.backlog.front() {
            if end > now {
                break;
            }
            self.backlog.pop_front();
            self.backlog_bytes -= u64::from(b);
        }
        let full = match self.queue {
            QueueLimit::Packets(n) => self.backlog.len() >= n as usize,
            QueueLimit::Bytes(n) => self.backlog_bytes + u64::from(bytes) > n,
        };
        if full {
            return None;
        }
        let start = self.backlog.back().map_or(now, |&(end, _)| end.max(now));
        let end = start + Duration::from_nanos(u64::from(bytes) * 8 * 1_000_000_000 / rate);
        self.backlog.push_back((end, bytes));
        self.backlog_bytes += u64::from(bytes);
        Some(end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> LinkSpec {
        LinkSpec {
            rtt: Duration::from_millis(100),
            ..LinkSpec::default()
        }
    }

    #[test]
    fn fixed_delay_is_half_the_rtt() {
        let mut s = Shaper::new(&spec(), 0);
        let t0 = Instant::now();
        assert_eq!(
            s.admit(t0, 100),
            Fate::DeliverAt(t0 + Duration::from_millis(50))
        );
    }

    #[test]
    fn rate_spaces_packets_by_their_serialization_time() {
        let mut s = Shaper::new(
            &LinkSpec {
                rate_bit_per_s: Some(12_000_000), // 1500 B = 1 ms
                ..spec()
            },
            0,
        );
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(s.admit(t0, 1500), Fate::DeliverAt(t0 + ms(51)));
        assert_eq!(s.admit(t0, 1500), Fate::DeliverAt(t0 + ms(52)));
        // Once the link is idle again a packet goes straight on.
        assert_eq!(s.admit(t0 + ms(10), 1500), Fate::DeliverAt(t0 + ms(61)));
    }

    #[test]
    fn drop_tail_in_packets_and_bytes() {
        let t0 = Instant::now();
        for (queue, fits) in [(QueueLimit::Packets(3), 3), (QueueLimit::Bytes(4000), 2)] {
            let mut s = Shaper::new(
                &LinkSpec {
                    rate_bit_per_s: Some(1_000_000),
                    queue,
                    ..spec()
                },
                0,
            );
            let fates: Vec<Fate> = (0..5).map(|_| s.admit(t0, 1500)).collect();
            let kept = fates
                .iter()
                .filter(|f| matches!(f, Fate::DeliverAt(_)))
                .count();
            assert_eq!(kept, fits, "{queue}");
            assert_eq!(fates[fits], Fate::QueueFull, "{queue}");
            // 1500 B at 1 Mbit/s = 12 ms: after the first leaves there is room for one more.
            assert!(matches!(
                s.admit(t0 + Duration::from_millis(12), 1500),
                Fate::DeliverAt(_)
            ));
        }
    }

    #[test]
    fn jitter_never_reorders_unless_asked() {
        let jittery = LinkSpec {
            jitter: Duration::from_millis(20),
            ..spec()
        };
        let t0 = Instant::now();
        let due = |reorder: bool| -> Vec<Instant> {
            let mut s = Shaper::new(
                &LinkSpec {
                    reorder,
                    ..jittery.clone()
                },
                0,
            );
            (0..2000u32)
                .map(
                    |i| match s.admit(t0 + Duration::from_micros(u64::from(i) * 100), 100) {
                        Fate::DeliverAt(t) => t,
                        other => panic!("{other:?}"),
                    },
                )
                .collect()
        };
        let fifo = due(false);
        assert!(fifo.windows(2).all(|w| w[0] <= w[1]));
        assert!(fifo.iter().all(|&t| t >= t0 + Duration::from_millis(30)));
        let free = due(true);
        assert!(
            free.windows(2).any(|w| w[0] > w[1]),
            "jitter of 20 ms over 100 us gaps"
        );
    }

    #[test]
    fn bernoulli_and_gilbert_hit_the_mean_loss_and_burst() {
        let n = 200_000;
        let mut rng = oorandom::Rand64::new(7);
        for burst in [None, Some(4.0)] {
            let mut m = LossModel::new(0.05, burst);
            let lost: Vec<bool> = (0..n).map(|_| m.lose(rng.rand_float())).collect();
            let rate = lost.iter().filter(|&&l| l).count() as f64 / n as f64;
            assert!((rate - 0.05).abs() < 0.005, "{burst:?}: {rate}");
            let bursts = lost.windows(2).filter(|w| w[1] && !w[0]).count() as f64;
            let mean_burst = lost.iter().filter(|&&l| l).count() as f64 / bursts;
            let want = burst.unwrap_or(1.0 / 0.95);
            assert!(
                (mean_burst - want).abs() < 0.1 * want,
                "{burst:?}: {mean_burst}"
            );
        }
    }

    #[test]
    fn full_loss_and_no_loss() {
        let mut all = LossModel::new(1.0, Some(3.0));
        assert!((0..100).all(|i| all.lose(f64::from(i) / 100.0)));
        let mut none = LossModel::new(0.0, None);
        assert!(!(0..100).any(|i| none.lose(f64::from(i) / 100.0)));
    }
}
