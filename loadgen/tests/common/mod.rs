//! Checks every clean loadgen run must pass, whatever the target (pushlab-server or a peer).

use pushlab_loadgen::record::decode_histogram;
use pushlab_proto::result::TransportResult;
use pushlab_proto::Transport;

/// The byte split sums exactly to the wire bytes, and every byte was parsed.
pub fn assert_split_exact(t: &TransportResult) {
    let name = t.transport;
    let b = &t.bytes_total;
    let parts = b.payload + b.envelope + b.headers + b.framing + b.handshake + b.control + b.tls;
    assert_eq!(
        parts as u64,
        t.wire_bytes_up + t.wire_bytes_down,
        "{name}: split must sum to the wire bytes"
    );
    assert_eq!(
        t.unattributed_bytes, 0,
        "{name}: every byte parsed: {:?}",
        t.notes
    );
    assert!(
        !t.notes.iter().any(|n| n.contains("loadgen bug")),
        "{name}: {:?}",
        t.notes
    );
}

/// Every published message reached every client once, in order, with one latency sample per
/// delivered message in the measured window; payload of at least 64 bytes per message; HTTP
/// headers on the HTTP transports, an Upgrade handshake (and no headers) on WebSocket.
pub fn assert_delivered_once(t: &TransportResult) {
    let name = t.transport;
    assert!(t.window_published_messages > 0, "{name}");
    assert_no_loss(t);
    assert_eq!(
        t.latency_us.count,
        t.clients * t.window_published_messages,
        "{name}: one sample per delivered message in the window"
    );
    let h = decode_histogram(&t.histogram).unwrap();
    assert_eq!(h.len(), t.latency_us.count, "{name}");
    let b = &t.bytes_total;
    assert!(b.payload >= (t.delivered_messages * 64) as f64, "{name}");
    match (name, t.scenario.http_version.as_str()) {
        (Transport::Ws, _) => assert!(b.handshake > 0.0 && b.headers == 0.0, "{name}"),
        // HTTP/2: the preface and first SETTINGS exchange are the handshake.
        (_, "h2c" | "h2") => assert!(b.headers > 0.0 && b.handshake > 0.0, "{name}"),
        _ => assert!(b.headers > 0.0 && b.handshake == 0.0, "{name}"),
    }
}

/// No message lost, duplicated or out of order, and every client got every published one.
pub fn assert_no_loss(t: &TransportResult) {
    let name = t.transport;
    assert_eq!(
        (
            t.lost_messages,
            t.duplicate_messages,
            t.out_of_order_messages
        ),
        (0, 0, 0),
        "{name}: {:?}",
        t.notes
    );
    assert_eq!(
        t.delivered_messages,
        t.clients * t.published_messages,
        "{name}"
    );
}
