//! The link's settings: raw flag values (`100ms`, `1%`, `10mbit`, `100pkt`, `64KiB`) parsed
//! into a checked [`LinkSpec`] before anything is made. Every parser refuses a bad value with
//! a reason; clap prefixes it with the flag's name (`invalid value '-5ms' for '--rtt <RTT>':
//! ...`).

use std::fmt;
use std::time::Duration;

/// The MTU of both ends of the link (Ethernet's), bytes.
pub const LINK_MTU_BYTES: u32 = 1500;

/// Drop-tail queue size when `--queue` is not given: 1000 packets, Linux's default
/// `txqueuelen` and pfifo limit.
pub const DEFAULT_QUEUE: QueueLimit = QueueLimit::Packets(1000);

/// How much the bottleneck's drop-tail queue holds (packets waiting for the link, the one
/// being sent included).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueLimit {
    /// At most this many packets.
    Packets(u32),
    /// At most this many bytes of IP packets.
    Bytes(u64),
}

impl fmt::Display for QueueLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueueLimit::Packets(n) => write!(f, "{n}pkt"),
            QueueLimit::Bytes(n) => write!(f, "{n}B"),
        }
    }
}

/// One emulated link, the same in both directions.
///
/// Each direction: drop (loss model) -> drop-tail queue into a bottleneck of `rate_bit_per_s`
/// -> a fixed one-way delay of `rtt / 2` plus a uniform jitter in `[-jitter, +jitter]`. Packets
/// leave in arrival order unless `reorder` is set.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkSpec {
    /// Round-trip time the link adds (half each way).
    pub rtt: Duration,
    /// Each packet's one-way delay varies uniformly within `± jitter` (clamped at 0).
    pub jitter: Duration,
    /// Fraction of packets lost per direction, `0.0..=1.0`.
    pub loss: f64,
    /// Mean length of a loss burst in packets (Gilbert-Elliott); `None` = independent
    /// (Bernoulli) losses.
    pub loss_burst_packets: Option<f64>,
    /// Bottleneck rate per direction, bits of IP packet per second; `None` = unlimited.
    pub rate_bit_per_s: Option<u64>,
    /// The bottleneck's drop-tail queue (only used with a rate).
    pub queue: QueueLimit,
    /// Let jitter reorder packets (off: a packet never leaves before the one ahead of it).
    pub reorder: bool,
    /// Seed of the loss and jitter draws (a fixed seed repeats the same draws).
    pub seed: u64,
}

impl Default for LinkSpec {
    fn default() -> Self {
        LinkSpec {
            rtt: Duration::ZERO,
            jitter: Duration::ZERO,
            loss: 0.0,
            loss_burst_packets: None,
            rate_bit_per_s: None,
            queue: DEFAULT_QUEUE,
            reorder: false,
            seed: 1,
        }
    }
}

impl LinkSpec {
    /// Refuses settings the parsers would have refused (for library callers that fill the
    /// fields themselves), naming the flag.
    pub fn check(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.loss) {
            return Err(format!("--loss {}: must be 0% to 100%", self.loss * 100.0));
        }
        if self.rate_bit_per_s == Some(0) {
            return Err("--rate 0: must be above 0".into());
        }
        if self
            .loss_burst_packets
            .is_some_and(|b| !(1.0..).contains(&b))
        {
            return Err("--loss-burst: at least 1 packet".into());
        }
        match self.queue {
            QueueLimit::Packets(0) => Err("--queue 0pkt: must hold a packet".into()),
            QueueLimit::Bytes(b) if b < u64::from(LINK_MTU_BYTES) => {
                Err(format!("--queue {b}B: smaller than one packet"))
            }
            _ => Ok(()),
        }
    }
}

impl fmt::Display for LinkSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rtt {:?} ({:?} each way), jitter ±{:?}, loss {}%",
            self.rtt,
            self.rtt / 2,
            self.jitter,
            self.loss * 100.0
        )?;
        if let Some(b) = self.loss_burst_packets {
            write!(f, " in bursts of {b} packets")?;
        }
        match self.rate_bit_per_s {
            Some(r) => write!(f, ", rate {r} bit/s, queue {}", self.queue)?,
            None => write!(f, ", rate unlimited")?,
        }
        write!(f, ", MTU {LINK_MTU_BYTES}")
    }
}

/// A delay: `100ms`, `0.5ms`, `250us`, `1s` (`0` alone is allowed). Refuses negative values.
pub fn parse_delay(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.starts_with('-') {
        return Err(format!("{s:?} is negative: a delay is 0 or more"));
    }
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    let (value, unit) =
        split_number(t).ok_or_else(|| format!("{s:?} is not a delay (try 100ms)"))?;
    let secs = match unit {
        "s" => value,
        "ms" => value / 1e3,
        "us" | "µs" => value / 1e6,
        "" => return Err(format!("{s:?} has no unit (use us, ms or s)")),
        other => return Err(format!("{s:?}: unknown unit {other:?} (use us, ms or s)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{s:?} is out of range"))
}

/// A loss: `1%`, `0.5%`, `0` -> a fraction in `0.0..=1.0`. Refuses more than 100 %.
pub fn parse_loss(s: &str) -> Result<f64, String> {
    let t = s.trim();
    if t.starts_with('-') {
        return Err(format!("{s:?} is negative: loss is 0% to 100%"));
    }
    if t == "0" {
        return Ok(0.0);
    }
    let (value, unit) = split_number(t).ok_or_else(|| format!("{s:?} is not a loss (try 1%)"))?;
    if unit != "%" {
        return Err(format!(
            "{s:?}: unknown unit {unit:?} (give a percentage: 1%)"
        ));
    }
    if value > 100.0 {
        return Err(format!("{s:?} is over 100%"));
    }
    Ok(value / 100.0)
}

/// A rate: `10mbit`, `500kbit`, `1gbit`, `9600bit` (SI prefixes, as tc writes them) -> bits
/// per second. Refuses 0.
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let t = s.trim();
    if t.starts_with('-') {
        return Err(format!("{s:?} is negative"));
    }
    let (value, unit) =
        split_number(t).ok_or_else(|| format!("{s:?} is not a rate (try 10mbit)"))?;
    let scale = match unit.to_ascii_lowercase().as_str() {
        "bit" => 1.0,
        "kbit" => 1e3,
        "mbit" => 1e6,
        "gbit" => 1e9,
        _ => {
            return Err(format!(
                "{s:?}: unknown unit {unit:?} (use bit, kbit, mbit or gbit)"
            ))
        }
    };
    let bits = (value * scale).round();
    if bits < 1.0 {
        return Err(format!("{s:?}: a rate must be above 0"));
    }
    if bits > 1e12 {
        return Err(format!("{s:?} is out of range (at most 1000gbit)"));
    }
    Ok(bits as u64)
}

/// A queue size: `100pkt`, `64KiB`, `1MiB`, `15000B`. Refuses 0 and anything smaller than one
/// full-size packet when given in bytes.
pub fn parse_queue(s: &str) -> Result<QueueLimit, String> {
    let t = s.trim();
    let (value, unit) = split_number(t)
        .ok_or_else(|| format!("{s:?} is not a queue size (try 100pkt or 64KiB)"))?;
    if value.fract() != 0.0 || value < 1.0 {
        return Err(format!("{s:?}: a queue holds a whole number above 0"));
    }
    let bytes = match unit {
        "pkt" | "pkts" | "packets" => {
            if value > 1e7 {
                return Err(format!("{s:?} is out of range (at most 10000000pkt)"));
            }
            return Ok(QueueLimit::Packets(value as u32));
        }
        "B" => value,
        "KiB" => value * 1024.0,
        "MiB" => value * 1024.0 * 1024.0,
        _ => {
            return Err(format!(
                "{s:?}: unknown unit {unit:?} (use pkt, B, KiB or MiB)"
            ))
        }
    };
    if bytes < f64::from(LINK_MTU_BYTES) {
        return Err(format!(
            "{s:?} is smaller than one {LINK_MTU_BYTES}-byte packet"
        ));
    }
    if bytes > 1e10 {
        return Err(format!("{s:?} is out of range"));
    }
    Ok(QueueLimit::Bytes(bytes as u64))
}

/// A mean loss-burst length in packets, at least 1.
pub fn parse_burst(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of packets"))?;
    if !(1.0..=1e6).contains(&v) {
        return Err(format!("{s:?}: a mean burst is 1 to 1000000 packets"));
    }
    Ok(v)
}

/// `12.5ms` -> (12.5, "ms"); None when there is no leading number.
/// The `--link` value of `run`, `compare` and `sweep`: comma-separated `key=value` pairs with
/// the `link` subcommand's flags as keys (`rtt`, `jitter`, `loss`, `loss-burst`, `rate`,
/// `queue`, `reorder`, `seed`), e.g. `rtt=100ms,loss=1%,rate=10mbit,jitter=5ms`. Keys left out
/// keep [`LinkSpec::default`]'s value (seed 1, so a run repeats its draws). An error names the
/// key: `--link loss=150%: ...`.
pub fn parse_link(s: &str) -> Result<LinkSpec, String> {
    let mut spec = LinkSpec::default();
    let mut seen = Vec::new();
    for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("--link {pair:?}: expected key=value (e.g. rtt=100ms)"))?;
        let (key, value) = (key.trim(), value.trim());
        if seen.contains(&key) {
            return Err(format!("--link {key}: given twice"));
        }
        seen.push(key);
        let named = |e: String| format!("--link {key}={value}: {e}");
        match key {
            "rtt" => spec.rtt = parse_delay(value).map_err(named)?,
            "jitter" => spec.jitter = parse_delay(value).map_err(named)?,
            "loss" => spec.loss = parse_loss(value).map_err(named)?,
            "loss-burst" => spec.loss_burst_packets = Some(parse_burst(value).map_err(named)?),
            "rate" => spec.rate_bit_per_s = Some(parse_rate(value).map_err(named)?),
            "queue" => spec.queue = parse_queue(value).map_err(named)?,
            "reorder" => {
                spec.reorder = value
                    .parse()
                    .map_err(|_| named("use true or false".into()))?
            }
            "seed" => spec.seed = value.parse().map_err(|_| named("not a number".into()))?,
            _ => {
                return Err(format!(
                    "--link {key}: unknown key (use rtt, jitter, loss, loss-burst, rate, queue, \
                     reorder, seed)"
                ))
            }
        }
    }
    if seen.is_empty() {
        return Err("--link: empty (e.g. rtt=100ms,loss=1%)".into());
    }
    spec.check().map_err(|e| format!("--link: {e}"))?;
    Ok(spec)
}

fn split_number(t: &str) -> Option<(f64, &str)> {
    let end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(end);
    let value: f64 = num.parse().ok()?;
    value.is_finite().then_some((value, unit.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays() {
        assert_eq!(parse_delay("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_delay("0.5ms"), Ok(Duration::from_micros(500)));
        assert_eq!(parse_delay("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_delay("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_delay("0"), Ok(Duration::ZERO));
        assert!(parse_delay("-5ms").unwrap_err().contains("negative"));
        assert!(parse_delay("5").unwrap_err().contains("no unit"));
        assert!(parse_delay("5min").unwrap_err().contains("unknown unit"));
        assert!(parse_delay("ms").is_err());
    }

    #[test]
    fn losses() {
        assert_eq!(parse_loss("1%"), Ok(0.01));
        assert_eq!(parse_loss("0"), Ok(0.0));
        assert_eq!(parse_loss("100%"), Ok(1.0));
        assert_eq!(parse_loss("0.5%"), Ok(0.005));
        assert!(parse_loss("101%").unwrap_err().contains("over 100%"));
        assert!(parse_loss("-1%").unwrap_err().contains("negative"));
        assert!(parse_loss("0.01").unwrap_err().contains("unknown unit"));
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("10mbit"), Ok(10_000_000));
        assert_eq!(parse_rate("1.5Mbit"), Ok(1_500_000));
        assert_eq!(parse_rate("500kbit"), Ok(500_000));
        assert_eq!(parse_rate("1gbit"), Ok(1_000_000_000));
        assert!(parse_rate("0mbit").unwrap_err().contains("above 0"));
        assert!(parse_rate("10mbps").unwrap_err().contains("unknown unit"));
        assert!(parse_rate("-1mbit").unwrap_err().contains("negative"));
    }

    #[test]
    fn queues() {
        assert_eq!(parse_queue("100pkt"), Ok(QueueLimit::Packets(100)));
        assert_eq!(parse_queue("64KiB"), Ok(QueueLimit::Bytes(65_536)));
        assert_eq!(parse_queue("15000B"), Ok(QueueLimit::Bytes(15_000)));
        assert!(parse_queue("0pkt").unwrap_err().contains("above 0"));
        assert!(parse_queue("100B")
            .unwrap_err()
            .contains("smaller than one"));
        assert!(parse_queue("64kb").unwrap_err().contains("unknown unit"));
        assert!(parse_queue("1.5pkt").is_err());
    }

    #[test]
    fn check_refuses_what_the_parsers_refuse() {
        assert_eq!(LinkSpec::default().check(), Ok(()));
        let bad = [
            LinkSpec {
                loss: 1.5,
                ..LinkSpec::default()
            },
            LinkSpec {
                rate_bit_per_s: Some(0),
                ..LinkSpec::default()
            },
            LinkSpec {
                loss_burst_packets: Some(0.5),
                ..LinkSpec::default()
            },
            LinkSpec {
                queue: QueueLimit::Packets(0),
                ..LinkSpec::default()
            },
            LinkSpec {
                queue: QueueLimit::Bytes(10),
                ..LinkSpec::default()
            },
        ];
        for spec in bad {
            assert!(spec.check().unwrap_err().starts_with("--"), "{spec:?}");
        }
    }

    #[test]
    fn bursts() {
        assert_eq!(parse_burst("4"), Ok(4.0));
        assert!(parse_burst("0.5").is_err());
        assert!(parse_burst("x").is_err());
    }

    #[test]
    fn link_values_parse_and_name_the_bad_key() {
        let spec = parse_link("rtt=100ms,loss=1%,rate=10mbit,jitter=5ms").unwrap();
        assert_eq!(spec.rtt, Duration::from_millis(100));
        assert_eq!(spec.jitter, Duration::from_millis(5));
        assert!((spec.loss - 0.01).abs() < 1e-12);
        assert_eq!(spec.rate_bit_per_s, Some(10_000_000));
        assert_eq!(spec.queue, DEFAULT_QUEUE);
        assert_eq!(spec.seed, 1);
        let spec = parse_link("rtt=0, queue=100pkt,reorder=true,seed=7").unwrap();
        assert_eq!(spec.queue, QueueLimit::Packets(100));
        assert!(spec.reorder);
        assert_eq!(spec.seed, 7);
        for (bad, key) in [
            ("rtt=-5ms", "--link rtt=-5ms"),
            ("loss=150%", "--link loss=150%"),
            ("rate=0", "--link rate=0"),
            ("rtt=10parsecs", "--link rtt=10parsecs"),
            ("delay=5ms", "--link delay"),
            ("rtt", "--link \"rtt\""),
            ("rtt=1ms,rtt=2ms", "--link rtt: given twice"),
            ("", "--link: empty"),
        ] {
            let e = parse_link(bad).unwrap_err();
            assert!(e.starts_with(key), "{bad}: {e}");
        }
    }
}
