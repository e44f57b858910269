//! 1,000 messages published as fast as one publisher goes reach each of 50 concurrent
//! subscribers complete, in order, exactly once.

use pushlab_proto::Transport;

use crate::client::Subscriber;
use crate::common::{start_server, test_config, ws_publish_n};
use crate::per_transport;

const MESSAGES: u64 = 1000;
const SUBSCRIBERS: usize = 50;

async fn fan_out_in_order_exactly_once(t: Transport) {
    let server = start_server(test_config()).await;
    assert!(server.shared.config.history as u64 >= MESSAGES);
    let topic = "fanout";
    let mut subs = Vec::new();
    for _ in 0..SUBSCRIBERS {
        subs.push(
            Subscriber::connect(server.addr, t, topic, Some(0))
                .await
                .expect("subscribe"),
        );
    }
    let readers: Vec<_> = subs
        .into_iter()
        .map(|mut s| {
            tokio::spawn(async move {
                s.poll_pause = std::time::Duration::from_millis(5);
                s.read_until(MESSAGES).await;
                s.close().await
            })
        })
        .collect();
    assert_eq!(ws_publish_n(server.addr, topic, MESSAGES).await, MESSAGES);
    for (i, r) in readers.into_iter().enumerate() {
        let track = r.await.expect("reader");
        track.assert_clean(&format!("{t} subscriber {i}"));
        assert_eq!(track.messages, MESSAGES, "{t} subscriber {i}");
        assert_eq!(track.cursor, MESSAGES);
    }
    server.stop().await;
}
per_transport!(fan_out_in_order_exactly_once);
