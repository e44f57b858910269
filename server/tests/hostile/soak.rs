//! The soak client that `scripts/soak.sh` runs against a separate server process (ignored in
//! a plain `cargo test`). For `PUSHLAB_SOAK_SECS` it publishes at a steady rate over
//! keep-alive connections it renews, keeps subscribers of all five transports connecting,
//! reading a while, and dropping (cleanly, with RST, or halfway through a message) before
//! resuming from their cursor, and opens abusive connections on the side. At the end every
//! subscriber must hold every message published during the soak exactly once, in order.
//!
//! ```text
//! PUSHLAB_SOAK_ADDR=127.0.0.1:8080 PUSHLAB_SOAK_SECS=600 PUSHLAB_SOAK_OUT=soak.json \
//!   cargo test -p pushlab-server --test hostile soak -- --ignored --nocapture
//! {"secs":600,"published":60000,"subscribers":30,"sessions":9000,"lost":0,"duplicates":0,...}
//! ```

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pushlab_proto::Transport;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::raw::{self, Item};

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What one subscriber saw over all its sessions.
#[derive(Debug, Default)]
struct Tally {
    last: u64,
    received: u64,
    lost: u64,
    duplicates: u64,
    gaps: u64,
    sessions: u64,
    errors: u64,
}

impl Tally {
    fn take(&mut self, items: &[Item]) {
        for i in items {
            match i {
                Item::Msg(m) if m.seq == self.last + 1 => {
                    self.received += 1;
                    self.last = m.seq;
                }
                Item::Msg(m) if m.seq <= self.last => self.duplicates += 1,
                Item::Msg(m) => {
                    self.lost += m.seq - self.last - 1;
                    self.received += 1;
                    self.last = m.seq;
                }
                Item::Gap(g) => {
                    self.gaps += 1;
                    self.lost += g.missed;
                    self.last = self.last.max(g.to);
                }
                _ => {}
            }
        }
    }
}

/// A small deterministic generator per task.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n.max(1)
    }
}

/// One subscription session from `tally.last`, kept for `hold` (or, for polls, polled until
/// then); returns when the hold is over or the subscriber has reached `upto`.
async fn session(
    addr: SocketAddr,
    t: Transport,
    topic: &str,
    tally: &mut Tally,
    hold: Duration,
    upto: Option<u64>,
    rng: &mut Lcg,
) {
    tally.sessions += 1;
    let deadline = Instant::now() + hold;
    let reached = |tally: &Tally| upto.is_some_and(|u| tally.last >= u);
    loop {
        let (mut s, status, mut dec, first) =
            raw::open_subscription(addr, t, topic, tally.last).await;
        if status != 200 && status != 101 {
            tally.errors += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
            return;
        }
        tally.take(&dec.push(&first));
        let left = deadline.saturating_duration_since(Instant::now());
        let (items, _) = raw::read_items(&mut s, &mut dec, left, |items| {
            items.iter().any(|i| matches!(i, Item::Next(_)))
                || upto.is_some_and(|u| raw::seqs(items).last().is_some_and(|&l| l >= u))
        })
        .await;
        tally.take(&items);
        if !t.is_request_response() || Instant::now() >= deadline || reached(tally) {
            // Hang up at whatever point the stream is (often mid-message): cleanly or with RST.
            if rng.below(2) == 0 {
                let _ = s.set_zero_linger();
            }
            return;
        }
        if t == Transport::Poll {
            tokio::time::sleep(Duration::from_millis(100 + rng.below(200))).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by scripts/soak.sh against a separate server"]
async fn soak() {
    let addr: SocketAddr = env("PUSHLAB_SOAK_ADDR", "127.0.0.1:8080".parse().unwrap());
    let secs: u64 = env("PUSHLAB_SOAK_SECS", 60);
    let rate: f64 = env("PUSHLAB_SOAK_RATE", 100.0);
    let per_transport: usize = env("PUSHLAB_SOAK_SUBSCRIBERS", 6);
    let topic = format!("soak-{}", std::process::id());
    let stop = Arc::new(AtomicBool::new(false));
    let published = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let abuse = Arc::new(AtomicU64::new(0));

    // Where the soak starts: the topic's newest seq (0 for a fresh topic).
    let r = raw::exchange(
        addr,
        &raw::get(&format!("/poll/{topic}"), &[]),
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(r.status, 200, "server at {addr} not answering");
    let start = pushlab_proto::frame::PollBatch::parse(&r.body)
        .expect("poll body")
        .next;

    // The publisher: steady rate, keep-alive connections renewed every 500 publishes.
    let publisher = {
        let (stop, published, refused, topic) = (
            stop.clone(),
            published.clone(),
            refused.clone(),
            topic.clone(),
        );
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
            let mut conn: Option<TcpStream> = None;
            let mut on_conn = 0;
            let mut n = 0u64;
            let mut last_seq = start;
            while !stop.load(Ordering::Relaxed) {
                every.tick().await;
                if conn.is_none() || on_conn >= 500 {
                    conn = TcpStream::connect(addr).await.ok();
                    on_conn = 0;
                }
                let Some(s) = conn.as_mut() else { continue };
                n += 1;
                let body = format!("soak {n} {}", "d".repeat(64));
                let req = format!(
                    "POST /publish/{topic} HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                if s.write_all(req.as_bytes()).await.is_err() {
                    conn = None;
                    continue;
                }
                let r = raw::read_response(s, Duration::from_secs(10)).await;
                on_conn += 1;
                match r.status {
                    202 => {
                        published.fetch_add(1, Ordering::Relaxed);
                        if let Some(seq) = serde_json::from_slice::<serde_json::Value>(&r.body)
                            .ok()
                            .and_then(|v| v["seq"].as_u64())
                        {
                            last_seq = last_seq.max(seq);
                        }
                    }
                    _ => {
                        refused.fetch_add(1, Ordering::Relaxed);
                        conn = None;
                    }
                }
            }
            last_seq
        })
    };

    // Abuse on the side: a connection dropped at some bad moment, 10 a second.
    let abuser = {
        let (stop, abuse, topic) = (stop.clone(), abuse.clone(), topic.clone());
        tokio::spawn(async move {
            let mut rng = Lcg(7);
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let Ok(mut s) = TcpStream::connect(addr).await else {
                    continue;
                };
                let req: Vec<u8> = match rng.below(5) {
                    0 => Vec::new(),
                    1 => b"GET /sse/x HT".to_vec(),
                    2 => raw::subscribe_request(Transport::Ws, &topic, 0, &[]),
                    3 => format!("POST /publish/{topic} HTTP/1.1\r\nhost: x\r\ncontent-length: 50\r\n\r\nshort").into_bytes(),
                    _ => vec![0x16, 0x03, 0x01, 0x00, 0xff],
                };
                let _ = s.write_all(&req).await;
                let _ = s.set_zero_linger();
                abuse.fetch_add(1, Ordering::Relaxed);
            }
        })
    };

    // Subscribers: churning sessions until the soak ends.
    let mut subs = JoinSet::new();
    let soak_for = Duration::from_secs(secs);
    let began = Instant::now();
    for (i, t) in Transport::ALL
        .iter()
        .flat_map(|t| std::iter::repeat_n(*t, per_transport))
        .enumerate()
    {
        let topic = topic.clone();
        subs.spawn(async move {
            let mut rng = Lcg(i as u64 + 1);
            let mut tally = Tally {
                last: start,
                ..Tally::default()
            };
            while began.elapsed() < soak_for {
                let hold = Duration::from_millis(200 + rng.below(4000));
                session(addr, t, &topic, &mut tally, hold, None, &mut rng).await;
            }
            (t, tally)
        });
    }
    let mut tallies = Vec::new();
    while let Some(r) = subs.join_next().await {
        tallies.push(r.expect("subscriber task"));
    }
    stop.store(true, Ordering::Relaxed);
    let final_seq = publisher.await.expect("publisher");
    abuser.await.expect("abuser");

    // Catch up to the last message published, then judge.
    let mut rng = Lcg(99);
    let mut per_transport_lost = serde_json::Map::new();
    for (t, tally) in &mut tallies {
        let deadline = Instant::now() + Duration::from_secs(60);
        while tally.last < final_seq && Instant::now() < deadline {
            session(
                addr,
                *t,
                &topic,
                tally,
                Duration::from_secs(10),
                Some(final_seq),
                &mut rng,
            )
            .await;
        }
        if tally.last < final_seq {
            tally.lost += final_seq - tally.last;
        }
        let e = per_transport_lost
            .entry(t.as_str())
            .or_insert(serde_json::json!(0));
        *e = serde_json::json!(e.as_u64().unwrap_or(0) + tally.lost);
    }
    let sum = |f: fn(&Tally) -> u64| tallies.iter().map(|(_, t)| f(t)).sum::<u64>();
    let report = serde_json::json!({
        "secs": secs,
        "publish_rate_per_s": rate,
        "published": published.load(Ordering::Relaxed),
        "publish_refused": refused.load(Ordering::Relaxed),
        "first_seq": start + 1,
        "last_seq": final_seq,
        "subscribers": tallies.len(),
        "sessions": sum(|t| t.sessions),
        "session_errors": sum(|t| t.errors),
        "messages_received": sum(|t| t.received),
        "lost": sum(|t| t.lost),
        "lost_by_transport": per_transport_lost,
        "duplicates": sum(|t| t.duplicates),
        "gap_notices": sum(|t| t.gaps),
        "abusive_connections": abuse.load(Ordering::Relaxed),
    });
    println!("{report}");
    if let Ok(path) = std::env::var("PUSHLAB_SOAK_OUT") {
        std::fs::write(path, report.to_string()).expect("write soak result");
    }
    assert_eq!(report["lost"], 0, "messages lost");
    assert_eq!(report["duplicates"], 0, "messages duplicated");
    assert!(
        report["published"].as_u64().unwrap_or(0) > 0,
        "nothing published"
    );
}
