//! Fuzz smoke: random and mutated bytes thrown at a live server socket, a bounded number of
//! times, from a fixed seed (`PUSHLAB_FUZZ_SEED` and `PUSHLAB_FUZZ_CASES` override). The
//! server must answer with a well-formed HTTP response or close, never hang past its timeouts,
//! never panic, and still answer `/healthz` with every connection gauge back at 0. Inputs that
//! once broke something are kept in [`REGRESSIONS`] and replayed first.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::fixture::{self, record};
use crate::raw;

/// Inputs kept because they once misbehaved (none so far crashed the server; these are the
/// corner cases the fuzz smoke found worth pinning).
const REGRESSIONS: &[&[u8]] = &[
    b"GET /poll/t?since=%FF HTTP/1.1\r\nhost: x\r\n\r\n",
    b"GET /sse/t HTTP/1.1\r\nhost: x\r\nlast-event-id: \xff\xfe\r\n\r\n",
    b"GET /ws/t HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-version: 13\r\nsec-websocket-key: AAAAAAAAAAAAAAAAAAAAAA==\r\n\r\n\x88\x80\x00\x00\x00\x00",
    b"GET /ws/t HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-version: 13\r\nsec-websocket-key: AAAAAAAAAAAAAAAAAAAAAA==\r\n\r\n\x81\xff\xff\xff\xff\xff\xff\xff\xff\xff\x00\x00\x00\x00",
    b"POST /publish/t HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nffffffffffffffff\r\n",
    b"GET /stream/t?since=0&since HTTP/1.1\r\nhost: x\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nhost: x\r\norigin: http://x\r\n\r\n",
    b"GET /longpoll/t?timeout=0 HTTP/1.1\r\nhost: x\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
];

const SEEDS: &[&[u8]] = &[
    b"GET /poll/t?since=0 HTTP/1.1\r\nhost: x\r\n\r\n",
    b"GET /longpoll/t?since=0&timeout=1 HTTP/1.1\r\nhost: x\r\n\r\n",
    b"GET /sse/t HTTP/1.1\r\nhost: x\r\nlast-event-id: 0\r\n\r\n",
    b"GET /stream/t?since=0 HTTP/1.1\r\nhost: x\r\n\r\n",
    b"POST /publish/t HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello",
    b"POST /publish/t HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n",
];

const WS_UPGRADE: &[u8] = b"GET /ws/t?since=0 HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"\r\n\r\n",
    b":",
    b" ",
    b"\0",
    b"%",
    b"%00",
    b"?",
    b"&",
    b"=",
    b"since=",
    b"/",
    b"..",
    b"\xff",
    b"HTTP/1.1",
    b"HTTP/2.0",
    b"content-length: 99999999999999999999\r\n",
    b"transfer-encoding: chunked\r\n",
    b"upgrade: websocket\r\n",
    b"connection: upgrade\r\n",
    b"last-event-id: 18446744073709551616\r\n",
    b"expect: 100-continue\r\n",
];

/// splitmix64: a small, seedable generator (the inputs only need to be varied and repeatable).
struct TestRng(u64);

impl TestRng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// A number in `lo..hi` (`lo` when the range is empty).
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi.saturating_sub(lo).max(1) as u64)) as usize
    }
    fn random_bool(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    fn random(&mut self) -> u8 {
        self.next_u64() as u8
    }
    fn fill_bytes(&mut self, v: &mut [u8]) {
        v.iter_mut().for_each(|b| *b = self.next_u64() as u8);
    }
}

/// One generated input: its class (for the log) and bytes.
fn generate(rng: &mut TestRng) -> (&'static str, Vec<u8>) {
    match rng.range(0, 5) {
        0 => {
            let n = rng.range(0, 512);
            let mut v = vec![0u8; n];
            rng.fill_bytes(&mut v);
            ("random bytes", v)
        }
        1 => {
            let seed = SEEDS[rng.range(0, SEEDS.len())];
            ("mutated request", mutate(rng, seed))
        }
        2 => {
            let mut v = b"GET /poll/t HTTP/1.1\r\nhost: x\r\n".to_vec();
            for _ in 0..rng.range(0, 40) {
                let k: String = (0..rng.range(1, 20))
                    .map(|_| char::from(rng.range(0x21, 0x7f) as u8))
                    .collect();
                let mut val = vec![0u8; rng.range(0, 200)];
                rng.fill_bytes(&mut val);
                v.extend_from_slice(k.as_bytes());
                v.extend_from_slice(b": ");
                v.extend_from_slice(&val);
                v.extend_from_slice(b"\r\n");
            }
            v.extend_from_slice(b"\r\n");
            ("random headers", v)
        }
        3 => {
            // A valid upgrade, then random frames: any opcode, flags, masks and lengths.
            let mut v = WS_UPGRADE.to_vec();
            for _ in 0..rng.range(1, 6) {
                let n = rng.range(0, 300);
                let mut payload = vec![0u8; n];
                rng.fill_bytes(&mut payload);
                let mut f =
                    raw::ws_client_frame(rng.range(0, 16) as u8, &payload, rng.random_bool(0.7));
                if rng.random_bool(0.3) {
                    f[0] ^= 1 << rng.range(4, 7); // reserved bits
                }
                if rng.random_bool(0.2) {
                    f[1] &= 0x7f; // unmasked
                }
                if rng.random_bool(0.2) {
                    f.truncate(rng.range(0, f.len().max(1)));
                }
                v.extend_from_slice(&f);
            }
            ("WebSocket frames after a valid upgrade", v)
        }
        _ => {
            let mut v = Vec::new();
            for _ in 0..rng.range(1, 30) {
                v.extend_from_slice(TOKENS[rng.range(0, TOKENS.len())]);
            }
            ("token soup", v)
        }
    }
}

fn mutate(rng: &mut TestRng, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..rng.range(1, 8) {
        if v.is_empty() {
            v.push(rng.random());
            continue;
        }
        let at = rng.range(0, v.len());
        match rng.range(0, 5) {
            0 => v[at] ^= 1 << rng.range(0, 8),
            1 => v.insert(at, rng.random()),
            2 => {
                v.remove(at);
            }
            3 => {
                let t = TOKENS[rng.range(0, TOKENS.len())];
                v.splice(at..at, t.iter().copied());
            }
            _ => v.truncate(at),
        }
    }
    v
}

/// Sends `input`, half-closes, and reads what comes back (bounded): the first line's status, or
/// 0 when the server closed without a response, or `None` if it neither answered nor closed in
/// time.
async fn throw(addr: std::net::SocketAddr, input: Vec<u8>, limit: Duration) -> Option<u16> {
    let mut s = TcpStream::connect(addr).await.ok()?;
    let _ = s.write_all(&input).await;
    let _ = s.shutdown().await;
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    let closed = tokio::time::timeout(limit, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) if got.len() < 1 << 16 => got.extend_from_slice(&buf[..n]),
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok();
    let (status, _) =
        raw::parse_head(&got[..raw::head_end(&got).unwrap_or(got.len()).min(got.len())]);
    if !got.is_empty() {
        assert!(
            got.starts_with(b"HTTP/1.1 "),
            "not an HTTP answer: {:?}",
            String::from_utf8_lossy(&got[..got.len().min(80)])
        );
    }
    // Streaming answers (SSE, stream, WebSocket) stay open by design: an answer counts.
    (closed || status > 0).then_some(status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzz_smoke_random_bytes_at_a_live_socket() {
    let server = fixture::start_server(fixture::config()).await;
    let topic = server.shared.feed.topic("t").unwrap();
    for i in 0..20 {
        server.shared.feed.publish(&topic, &format!("m{i}"));
    }
    let seed: u64 = std::env::var("PUSHLAB_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x0070_7573_686c_6162);
    let cases: usize = std::env::var("PUSHLAB_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(400);
    let mut rng = TestRng(seed);
    // Streams stay open until the client goes; cap each exchange a little past the header and
    // idle timeouts so a hang shows up as None.
    let limit = Duration::from_secs(4);

    let mut inputs: Vec<(&'static str, Vec<u8>)> = REGRESSIONS
        .iter()
        .map(|r| ("kept regression", r.to_vec()))
        .collect();
    inputs.extend((0..cases).map(|_| generate(&mut rng)));
    let mut answers: BTreeMap<&str, BTreeMap<u16, usize>> = BTreeMap::new();
    let addr = server.addr;
    for batch in inputs.chunks(50) {
        let mut set = JoinSet::new();
        for (class, input) in batch.iter().cloned() {
            set.spawn(async move { (class, input.clone(), throw(addr, input, limit).await) });
        }
        while let Some(r) = set.join_next().await {
            let (class, input, status) = r.expect("probe task panicked");
            let status = status.unwrap_or_else(|| {
                panic!(
                    "no answer and no close for {class} input {:?}",
                    String::from_utf8_lossy(&input)
                )
            });
            *answers.entry(class).or_default().entry(status).or_default() += 1;
        }
        let h = raw::exchange(addr, &raw::get("/healthz", &[]), limit).await;
        assert_eq!(h.status, 200, "server stopped answering /healthz");
    }
    assert_eq!(
        server.settle(Duration::from_secs(15)).await,
        0,
        "connections left open"
    );
    for (class, by_status) in &answers {
        let n: usize = by_status.values().sum();
        let spread: Vec<String> = by_status
            .iter()
            .map(|(s, k)| {
                if *s == 0 {
                    format!("closed without answer x{k}")
                } else {
                    format!("{s} x{k}")
                }
            })
            .collect();
        record(
            "fuzz",
            &format!("{class}: {n} inputs (seed {seed:#x})"),
            &spread.join(", "),
        );
    }
}
