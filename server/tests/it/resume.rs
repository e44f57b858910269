//! A subscriber whose connection is cut mid-stream resumes from its own cursor (`?since=`, or
//! `Last-Event-ID` for SSE) with no gap and no duplicate.

use pushlab_proto::Transport;

use crate::client::Subscriber;
use crate::common::{start_server, test_config, ws_publish_n};
use crate::per_transport;

async fn cut_connection_resumes_without_gap_or_duplicate(t: Transport) {
    let mut config = test_config();
    // Poll batches of 10, so a poll client too is cut between batches mid-feed.
    config.max_batch = 10;
    let server = start_server(config).await;
    let topic = "resume";
    let first = 100;
    let mut sub = Subscriber::connect(server.addr, t, topic, Some(0))
        .await
        .expect("subscribe");
    ws_publish_n(server.addr, topic, first).await;
    // Read part of what is there, then drop the socket with whatever is still unread.
    sub.read_until(first / 3).await;
    let cursor = sub.track.cursor;
    assert!(cursor < first, "{t}: read everything before the cut");
    sub.cut();
    // Published while disconnected.
    let last = ws_publish_n(server.addr, topic, 50).await;
    let mut sub = Subscriber::resume(
        server.addr,
        t,
        topic,
        Some(cursor),
        std::mem::take(&mut sub.track),
    )
    .await
    .expect("resume");
    sub.read_until(last).await;
    let track = sub.close().await;
    track.assert_clean(&format!("{t} across the cut"));
    assert_eq!(track.messages, last, "{t}: every message exactly once");
    server.stop().await;
}
per_transport!(cut_connection_resumes_without_gap_or_duplicate);
