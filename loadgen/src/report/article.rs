//! The source texts' own figures, in one place: the "Quantum Leap" article's table (which the
//! Chinese and English tutorials repeat) and the claims as the design page states them.
//!
//! ```text
//! clients             1,000   10,000   100,000
//! polling, Mbit/s       6.6       66       665    871 B of headers per poll, 1 poll/s
//! WebSocket, Mbit/s   0.015    0.153     1.526    2 B of framing per message, 1 msg/s
//! cut                 500:1 to 1000:1 in header traffic; latency 150 ms -> 50 ms
//! ```

/// Header bytes per poll (request + response).
pub const HEADER_BYTES: f64 = 871.0;
/// WebSocket framing bytes per message.
pub const WS_FRAMING_BYTES: f64 = 2.0;
/// The cut in header traffic, low end (the article's range is 500:1 to 1000:1).
pub const MIN_CUT: f64 = 500.0;
/// Polling bandwidth at 1k/10k/100k clients, in the article's unit (2^20 bit/s).
pub const POLL_MIBIT: [f64; 3] = [6.6, 66.0, 665.0];
/// WebSocket bandwidth at 1k/10k/100k clients, in the article's unit (2^20 bit/s).
pub const WS_MIBIT: [f64; 3] = [0.015, 0.153, 1.526];
/// The client counts of the table.
pub const CLIENTS: [u64; 3] = [1_000, 10_000, 100_000];
/// Messages per second per client the table assumes.
pub const RATE_PER_S: f64 = 1.0;
/// The latency the article gives for polling and for WebSocket, ms (assumed round trips).
pub const LATENCY_MS: (f64, f64) = (150.0, 50.0);
/// The article's unit: its "Mbps" figures are bits per second divided by 2^20.
pub const MIBIT: f64 = 1_048_576.0;
/// "Polling 60 times a minute" (C6): one poll per second.
pub const POLL_INTERVAL_MS: u64 = 1000;

/// Bandwidth in Mibit/s of `bytes_per_message` at `rate_per_s` per client and `clients`.
pub fn mibit(bytes_per_message: f64, rate_per_s: f64, clients: f64) -> f64 {
    bytes_per_message * rate_per_s * 8.0 * clients / MIBIT
}

/// The claims as the design page states them.
pub const CLAIMS: [(&str, &str); 8] = [
    ("C1", "Short polling sends requests whether or not there is news: at a low publish rate most responses are empty, and bandwidth and server work are wasted."),
    ("C2", "Each HTTP request and response repeats its headers; the useful data is a small part of what crosses the wire (the article: 871 bytes of headers per poll)."),
    ("C3", "A WebSocket message costs about 2 bytes of framing; after one handshake (101 Switching Protocols) both sides send at will."),
    ("C4", "Long polling removes most useless requests and suits infrequent data, but reconnects after every message, and its delivery is slightly less real-time than polling 60 times a minute."),
    ("C5", "HTTP streaming keeps one long connection per client and strains the server at high concurrency."),
    ("C6", "Polling 60 times a minute is near real-time but wastes resources on both client and server."),
    ("C7", "Every request without keep-alive pays a TCP three-way handshake and four-way close."),
    ("C8", "At one message per second per client, polling with 871-byte headers needs 6.6 / 66 / 665 Mbit/s for 1,000 / 10,000 / 100,000 clients, WebSocket 0.015 / 0.153 / 1.526 Mbit/s: a 500:1 to 1000:1 cut in header traffic, and latency from 150 ms to 50 ms."),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_the_articles_arithmetic() {
        for (i, clients) in CLIENTS.iter().enumerate() {
            let poll = mibit(HEADER_BYTES, RATE_PER_S, *clients as f64);
            assert!(
                (poll - POLL_MIBIT[i]).abs() / POLL_MIBIT[i] < 0.02,
                "{poll}"
            );
            let ws = mibit(WS_FRAMING_BYTES, RATE_PER_S, *clients as f64);
            assert!((ws - WS_MIBIT[i]).abs() / WS_MIBIT[i] < 0.02, "{ws}");
        }
    }
}
