//! The counters of one transport entry, named once.
//!
//! [`Counters`] is what the loadgen's recorder fills (through its atomic mirror
//! [`AtomicCounters`]), what `merge` adds, and what the result file serializes (flattened into
//! each transport entry, so the JSON keys are the field names below):
//!
//! ```text
//! { "transport": "ws", ..., "delivered_messages": 10000, "tcp_connects": 100, ... }
//! ```
//!
//! A new counter is one line in the [`counters!`] list below: the plain struct, the atomic
//! mirror, [`Counters::add`], the snapshot and the schema all follow from it.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// Defines [`Counters`] and [`AtomicCounters`] from one list of documented names.
macro_rules! counters {
    ($( $(#[doc = $doc:literal])* $name:ident ),* $(,)?) => {
        /// One transport entry's counters (totals over the phase, summed over subscribers and,
        /// after `merge`, over runs).
        #[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
        #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
        pub struct Counters {
            $( $(#[doc = $doc])* #[serde(default)] pub $name: u64, )*
        }

        /// [`Counters`] as atomics, shared by a phase's subscriber tasks.
        #[derive(Debug, Default)]
        pub struct AtomicCounters {
            $( $(#[doc = $doc])* pub $name: AtomicU64, )*
        }

        impl Counters {
            /// Every counter's name, as in the JSON.
            pub const NAMES: &'static [&'static str] = &[$( stringify!($name) ),*];

            /// Adds `other` into `self`, counter by counter.
            pub fn add(&mut self, other: &Counters) {
                $( self.$name += other.$name; )*
            }
        }

        impl AtomicCounters {
            /// The values now (each read on its own: a snapshot taken while subscribers run is
            /// not one instant, one taken after they end is exact).
            pub fn snapshot(&self) -> Counters {
                Counters { $( $name: self.$name.load(Ordering::Relaxed), )* }
            }
        }
    };
}

counters! {
    /// Messages published on this entry's topic (acknowledged by the target).
    published_messages,
    /// Messages published in the measured window (after warmup); each subscriber should hold
    /// one latency sample per such message.
    window_published_messages,
    /// Messages delivered, summed over clients (measured window and warmup).
    delivered_messages,
    /// Every byte client sockets sent, connect to close.
    wire_bytes_up,
    /// Every byte client sockets received, connect to close.
    wire_bytes_down,
    /// HTTP requests sent (the WebSocket Upgrade counts as one).
    http_requests,
    /// Responses that carried no message (an empty poll batch, a long poll that timed out).
    empty_responses,
    /// TCP connections opened.
    tcp_connects,
    /// Most connections open at once.
    peak_open_connections,
    /// Connections opened again after the first (keep-alive off, or a cut connection).
    reconnects,
    /// Failed requests and connections.
    errors,
    /// Gap notices received (the server saying "you missed N"): not losses.
    gap_notices,
    /// Seqs a subscriber never held and no gap notice covered.
    lost_messages,
    /// Seqs a subscriber held twice.
    duplicate_messages,
    /// Seqs that arrived after a higher one.
    out_of_order_messages,
    /// Bytes read that no parser consumed (a connection cut mid-message); counted in
    /// `bytes_total.framing` so the split still sums, and 0 in a clean run.
    unattributed_bytes,
    /// Requests that were the first on their connection.
    first_requests,
    /// Header bytes of those requests: the request head on HTTP/1.1, the HPACK header block
    /// (HEADERS + CONTINUATION payloads, no frame headers) on HTTP/2, where the compression
    /// context is still empty.
    headers_first_request_bytes,
    /// Requests after the first on their connection.
    later_requests,
    /// Header bytes of those requests (on HTTP/2 the HPACK table is warm).
    headers_later_request_bytes,
    /// Responses that were the first on their connection.
    first_responses,
    /// Header bytes of those responses (status line and fields, or the HPACK header block).
    headers_first_response_bytes,
    /// Responses after the first on their connection.
    later_responses,
    /// Header bytes of those responses.
    headers_later_response_bytes,
}

impl AtomicCounters {
    /// Adds `n` to `counter` (a field of `self`).
    pub fn bump(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_and_snapshot_cover_every_counter() {
        let a = AtomicCounters::default();
        AtomicCounters::bump(&a.delivered_messages, 3);
        AtomicCounters::bump(&a.unattributed_bytes, 7);
        let mut c = a.snapshot();
        assert_eq!((c.delivered_messages, c.unattributed_bytes), (3, 7));
        c.add(&c.clone());
        assert_eq!((c.delivered_messages, c.unattributed_bytes), (6, 14));
        // Serialized under their own names, one key each.
        let json = serde_json::to_value(c).unwrap();
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(keys.len(), Counters::NAMES.len());
        for name in Counters::NAMES {
            assert!(keys.contains(name), "{name}");
        }
        // Older files without a counter still read.
        let back: Counters = serde_json::from_str(r#"{"tcp_connects": 2}"#).unwrap();
        assert_eq!(back.tcp_connects, 2);
    }
}
