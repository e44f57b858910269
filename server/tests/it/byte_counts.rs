//! The server's /metrics byte counters equal, to the byte, what the client counted on its own
//! socket, per transport (and so do its request and delivery counters).
//!
//! The subscriber's connection carries only its transport's requests; publishing goes over
//! another connection (transport `publish`) and the /metrics scrapes over others (`other`).
//! The client closes cleanly once it has read everything the server wrote (no heartbeat or
//! ping is due in the meantime), waits until the server's open-connections gauge for the
//! transport is 0, then compares.

use pushlab_proto::Transport;

use crate::client::Subscriber;
use crate::common::{sample, start_server, test_config, until_closed, Publisher};
use crate::per_transport;

async fn metrics_bytes_equal_client_socket_bytes(t: Transport) {
    let mut config = test_config();
    // Nothing may be written after the client's last read.
    config.heartbeat_interval = std::time::Duration::from_secs(3600);
    config.ws_ping_interval = std::time::Duration::from_secs(3600);
    let server = start_server(config).await;
    let messages = 20;
    let mut sub = Subscriber::connect(server.addr, t, "bytes", Some(0))
        .await
        .expect("subscribe");
    let mut publisher = Publisher::new(server.addr, "bytes").await;
    let last = publisher.publish_n(messages).await;
    publisher.close().await;
    sub.read_until(last).await;
    let wire = sub.wire.clone();
    let requests = sub.requests;
    let track = sub.close().await;
    track.assert_clean(&format!("{t}"));

    let m = until_closed(server.addr, t).await;
    let name = t.as_str();
    let read = sample(&m, "pushlab_bytes_read_total", name);
    let written = sample(&m, "pushlab_bytes_written_total", name);
    assert!(wire.written() > 0 && wire.read() > 0);
    assert_eq!(
        (read, written),
        (wire.written(), wire.read()),
        "{t}: server (read, written) vs client (written, read)"
    );
    assert_eq!(sample(&m, "pushlab_accepted_connections_total", name), 1);
    assert_eq!(sample(&m, "pushlab_requests_total", name), requests, "{t}");
    assert_eq!(
        sample(&m, "pushlab_delivered_messages_total", name),
        messages,
        "{t}"
    );
    // No other transport was credited with anything.
    for other in Transport::ALL.iter().filter(|&&o| o != t) {
        assert_eq!(sample(&m, "pushlab_bytes_read_total", other.as_str()), 0);
        assert_eq!(sample(&m, "pushlab_bytes_written_total", other.as_str()), 0);
    }
    server.stop().await;
}
per_transport!(metrics_bytes_equal_client_socket_bytes);
