//! What shard 0 really published, handed to the other shards of one run through a file.
//!
//! Every shard of a run follows the same publish schedule, but only shard 0 publishes; the
//! others expect one seq per scheduled message. A publish that fails for good (a `503` while a
//! replica's Redis is slow, a timeout) would then be "lost" by every subscriber of the other
//! shards although it was never published. So shard 0 writes, once it has published,
//!
//! ```text
//! {"topics":[{"topic":"lab-ws-1a2b","published":7,"window_published":5,"last_seq":7}, ...]}
//! ```
//!
//! to `--published-file` (written to a temporary name, then renamed: a reader never sees half
//! a file), and the other shards wait for it (bounded by [`WAIT`]) before they drain.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::publisher::Published;

/// How long past the end of the schedule a follower waits for shard 0's file (its last
/// publish may take a command timeout or two on an overloaded target).
pub const WAIT: Duration = Duration::from_secs(20);

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct TopicTally {
    topic: String,
    published: u64,
    window_published: u64,
    last_seq: u64,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Handoff {
    topics: Vec<TopicTally>,
}

/// Writes each topic's tally to `path` (temporary file, then rename).
///
/// # Errors
/// The I/O error, with the path.
pub fn write(path: &Path, tallies: &[(&str, &Published)]) -> std::io::Result<()> {
    let h = Handoff {
        topics: tallies
            .iter()
            .map(|(topic, p)| TopicTally {
                topic: (*topic).to_string(),
                published: p.published,
                window_published: p.window_published,
                last_seq: p.last_seq,
            })
            .collect(),
    };
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec(&h).map_err(std::io::Error::other)?)?;
    std::fs::rename(&tmp, path)
}

/// Shard 0's tally for each of `topics` (in that order), once `path` holds them all; `None`
/// if it does not within `wait` (shard 0 died: the run fails on its error anyway).
pub async fn read(path: &Path, topics: &[&str], wait: Duration) -> Option<Vec<Published>> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if let Some(found) = parse(&std::fs::read(path).unwrap_or_default(), topics) {
            return Some(found);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn parse(bytes: &[u8], topics: &[&str]) -> Option<Vec<Published>> {
    let h: Handoff = serde_json::from_slice(bytes).ok()?;
    topics
        .iter()
        .map(|name| {
            h.topics
                .iter()
                .find(|t| t.topic == *name)
                .map(|t| Published {
                    published: t.published,
                    window_published: t.window_published,
                    last_seq: t.last_seq,
                    ..Published::default()
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_follower_reads_what_shard_0_wrote_and_gives_up_without_it() {
        let dir = std::env::temp_dir().join(format!("pushlab-handoff-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("phase-0-published.handoff");
        let wait = Duration::from_millis(120);
        assert!(read(&path, &["a"], wait).await.is_none(), "no file yet");
        let a = Published {
            published: 6,
            window_published: 5,
            last_seq: 9,
            errors: 1,
            ..Published::default()
        };
        let b = Published {
            published: 7,
            window_published: 5,
            last_seq: 7,
            ..Published::default()
        };
        write(&path, &[("a", &a), ("b", &b)]).unwrap();
        let got = read(&path, &["b", "a"], wait).await.unwrap();
        assert_eq!(
            got.iter()
                .map(|p| (p.published, p.window_published, p.last_seq))
                .collect::<Vec<_>>(),
            vec![(7, 5, 7), (6, 5, 9)]
        );
        // A topic shard 0 never wrote: not there, so keep waiting (then give up).
        assert!(read(&path, &["c"], wait).await.is_none());
        assert!(
            parse(b"{\"topics\":[{\"topic\":", &["a"]).is_none(),
            "half a file"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
