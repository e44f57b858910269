//! A subscriber left behind the history ring gets an explicit gap notice with the right count
//! (poll batch `gap` field, SSE `event: gap`, NDJSON gap line, WebSocket gap frame), then the
//! retained messages, then live ones; nothing is lost silently.

use pushlab_proto::{Gap, Transport};

use crate::client::Subscriber;
use crate::common::{sample, scrape, start_server, test_config, ws_publish_n, Publisher};
use crate::per_transport;

async fn behind_the_ring_gets_a_gap_notice(t: Transport) {
    let mut config = test_config();
    config.history = 16;
    config.max_subscriber_lag = 16;
    let history = config.history as u64;
    let server = start_server(config).await;
    let topic = "gap";
    let published = 100;
    ws_publish_n(server.addr, topic, published).await;
    let mut sub = Subscriber::connect(server.addr, t, topic, Some(0))
        .await
        .expect("subscribe");
    sub.read_until(published).await;
    let expected = Gap {
        missed: published - history,
        from: 1,
        to: published - history,
    };
    assert_eq!(sub.track.gaps, vec![expected], "{t}: one gap notice");
    assert!(
        sub.track.problems.is_empty(),
        "{t}: {:?}",
        sub.track.problems
    );
    assert_eq!(sub.track.messages, history, "{t}: the retained messages");
    // And it goes on live from there without another gap.
    let last = ws_publish_n(server.addr, topic, 5).await;
    sub.read_until(last).await;
    let track = sub.close().await;
    assert_eq!(track.gaps.len(), 1);
    assert!(track.problems.is_empty(), "{t}: {:?}", track.problems);
    assert_eq!(track.messages, history + 5);
    let m = scrape(server.addr).await;
    assert_eq!(
        sample(&m, "pushlab_gap_notices_total", t.as_str()),
        1,
        "{t}: the gap notice is counted"
    );
    server.stop().await;
}
per_transport!(behind_the_ring_gets_a_gap_notice);

/// A subscriber that stops reading while the feed runs far past the ring (and past what the
/// sockets can buffer) is moved on with a gap notice when it reads again: every seq is either
/// delivered once, in order, or counted in a gap, and the newest message arrives.
async fn stalled_reader_gets_a_gap_notice(t: Transport) {
    let mut config = test_config();
    config.history = 16;
    config.max_subscriber_lag = 16;
    let server = start_server(config).await;
    let topic = "stall";
    let mut sub = Subscriber::connect_small_buffer(server.addr, t, topic, Some(0))
        .await
        .expect("subscribe");
    // Far more than the client's 16 KiB receive buffer, the server's send buffer (at most
    // 4 MiB here) and its write buffers together.
    let (count, bytes) = (200u64, 40 * 1024);
    let data = "d".repeat(bytes);
    let mut p = Publisher::new(server.addr, topic).await;
    let mut last = 0;
    for _ in 0..count {
        last = p.publish(&data).await;
    }
    p.close().await;
    sub.read_until(last).await;
    let track = sub.close().await;
    assert!(track.problems.is_empty(), "{t}: {:?}", track.problems);
    assert!(
        !track.gaps.is_empty(),
        "{t}: no gap notice for a stalled reader"
    );
    let missed: u64 = track.gaps.iter().map(|g| g.missed).sum();
    assert_eq!(
        track.messages + missed,
        count,
        "{t}: every seq delivered or in a gap"
    );
    let m = scrape(server.addr).await;
    assert_eq!(
        sample(&m, "pushlab_gap_notices_total", t.as_str()),
        track.gaps.len() as u64,
        "{t}: each gap notice is counted"
    );
    server.stop().await;
}
per_transport!(stalled_reader_gets_a_gap_notice);
