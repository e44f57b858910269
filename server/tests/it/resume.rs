//! A subscriber whose connection is cut mid-stream resumes from its own cursor (`?since=`, or
//! `Last-Event-ID` for SSE) with no gap and no duplicate.

use std::net::SocketAddr;

use pushlab_proto::Transport;

use crate::client::Subscriber;
use crate::common::{start_server, test_config, ws_publish_n};
use crate::per_transport;

async fn cut_connection_resumes_without_gap_or_duplicate(t: Transport) {
    let mut config = test_config();
    // Poll batches of 10, so a poll client too is cut between batches mid-feed.
    config.max_batch = 10;
    let server = start_server(config).await;
    cut_then_resume(t, server.addr, server.addr, "resume").await;
    server.stop().await;
}
per_transport!(cut_connection_resumes_without_gap_or_duplicate);

/// Subscribes on `first` from seq 0, publishes 100 there, reads a third, cuts the connection
/// with the rest unread, publishes 50 more on `then`, and resumes on `then` from its own
/// cursor: every message exactly once, in order, no gap (the servers may be one, or two
/// replicas sharing a backplane).
pub(crate) async fn cut_then_resume(
    t: Transport,
    first: SocketAddr,
    then: SocketAddr,
    topic: &str,
) {
    let mut sub = Subscriber::connect(first, t, topic, Some(0))
        .await
        .expect("subscribe");
    let published = ws_publish_n(first, topic, 100).await;
    // Read part of what is there, then drop the socket with whatever is still unread.
    sub.read_until(published / 3).await;
    let cursor = sub.track.cursor;
    assert!(cursor < published, "{t}: read everything before the cut");
    sub.cut();
    // Published while disconnected.
    let last = ws_publish_n(then, topic, 50).await;
    let mut sub = Subscriber::resume(then, t, topic, Some(cursor), std::mem::take(&mut sub.track))
        .await
        .expect("resume");
    sub.read_until(last).await;
    let track = sub.close().await;
    track.assert_clean(&format!("{t} across the cut ({first} -> {then})"));
    assert_eq!(track.messages, last, "{t}: every message exactly once");
}
