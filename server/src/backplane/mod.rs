//! Where the feed lives: in this process (the default), or shared by several server replicas
//! through Redis (`--backplane redis://HOST:PORT`, see [`redis`]).
//!
//! With a backplane, a publish on any replica is ordered and numbered in Redis, and every
//! replica's one reader task takes each entry once into its local [`crate::feed::Feed`], from
//! which its subscribers are served exactly as without one (encode once, the same framings,
//! the same cursors and gap notices). This file holds the pure rules; [`redis`] the I/O.
//!
//! The seq rule, run atomically in Redis by the publish script (and mirrored by
//! [`assign_seq`], which the unit tests pin): `seq = max(counter, floor) + 1`, where `floor` is
//! the highest seq the publishing replica holds or was acknowledged for that topic. After a
//! Redis restart without persistence the counter is gone; every replica re-seeds it to what it
//! holds (`SET counter max(counter, held)`, [`reseed`]) before it accepts publishes again, so
//! seqs never go backwards or repeat.
//!
//! ```text
//! pushlab:{topic}:seq      string   the topic's newest assigned seq
//! pushlab:{topic}:stream   stream   entries {seq, ts, data}, trimmed MAXLEN ~ --history
//! ```

pub mod redis;

use std::collections::HashMap;

/// Why a publish or a subscription could not go through the backplane.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackplaneError {
    /// Redis cannot be reached (or has not been re-seeded since it came back).
    #[error("the Redis backplane is unreachable: {0}")]
    Down(String),
}

/// One stream entry as the publish script wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEntry {
    pub seq: u64,
    /// Nanoseconds since the Unix epoch when the publishing replica accepted the message.
    pub ts: u64,
    pub data: String,
}

/// Why a stream entry could not be decoded (a field missing or malformed): the reader skips
/// it and counts it, it never panics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stream entry {id}: {why}")]
pub struct DecodeError {
    pub id: String,
    pub why: String,
}

/// Decodes the fields `seq`, `ts` (decimal) and `data` (UTF-8) of stream entry `id`.
///
/// # Errors
/// A [`DecodeError`] naming the entry and the field missing or malformed.
pub fn decode_entry(
    id: &str,
    fields: &HashMap<String, ::redis::Value>,
) -> Result<StreamEntry, DecodeError> {
    let err = |why: String| DecodeError {
        id: id.to_string(),
        why,
    };
    let bytes = |name: &str| -> Result<&[u8], DecodeError> {
        match fields.get(name) {
            Some(::redis::Value::BulkString(b)) => Ok(b),
            Some(::redis::Value::SimpleString(s)) => Ok(s.as_bytes()),
            Some(other) => Err(err(format!("field {name} is not a string: {other:?}"))),
            None => Err(err(format!("field {name} is missing"))),
        }
    };
    let number = |name: &str| -> Result<u64, DecodeError> {
        let b = bytes(name)?;
        std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| err(format!("field {name} is not a decimal u64")))
    };
    let seq = number("seq")?;
    if seq == 0 {
        return Err(err("field seq is 0 (seqs start at 1)".into()));
    }
    let ts = number("ts")?;
    let data = String::from_utf8(bytes("data")?.to_vec())
        .map_err(|_| err("field data is not UTF-8".into()))?;
    Ok(StreamEntry { seq, ts, data })
}

/// The seq the publish script assigns when the topic's counter holds `counter` (`None`: the
/// key is absent, as after a restart without persistence) and the publishing replica holds
/// seqs up to `floor`.
pub fn assign_seq(counter: Option<u64>, floor: u64) -> u64 {
    counter.unwrap_or(0).max(floor) + 1
}

/// The counter after a replica holding seqs up to `held` re-seeds it: never lower than it was.
pub fn reseed(counter: Option<u64>, held: u64) -> u64 {
    counter.unwrap_or(0).max(held)
}

/// The Redis key of a topic's seq counter.
pub fn seq_key(topic: &str) -> String {
    format!("pushlab:{topic}:seq")
}

/// The Redis key of a topic's stream.
pub fn stream_key(topic: &str) -> String {
    format!("pushlab:{topic}:stream")
}

/// The topic a stream key names (`None` for a key the lab did not make).
pub fn topic_of_stream(key: &str) -> Option<&str> {
    key.strip_prefix("pushlab:")?.strip_suffix(":stream")
}

/// `url` with any password replaced by `***`, for logs and errors.
pub fn shown_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::redis::Value;

    /// Field name and raw value pairs of one stream entry.
    type Pairs<'a> = &'a [(&'a str, &'a [u8])];

    fn fields(pairs: Pairs) -> HashMap<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Value::BulkString(v.to_vec())))
            .collect()
    }

    #[test]
    fn entries_decode_or_say_which_field_is_wrong() {
        let ok = fields(&[
            ("seq", b"42"),
            ("ts", b"1763000000000000000"),
            ("data", b"hi"),
        ]);
        assert_eq!(
            decode_entry("1-0", &ok),
            Ok(StreamEntry {
                seq: 42,
                ts: 1_763_000_000_000_000_000,
                data: "hi".into()
            })
        );
        let cases: [(Pairs, &str); 5] = [
            (&[("ts", b"1"), ("data", b"x")], "field seq is missing"),
            (
                &[("seq", b"x1"), ("ts", b"1"), ("data", b"x")],
                "field seq is not",
            ),
            (
                &[("seq", b"0"), ("ts", b"1"), ("data", b"x")],
                "seqs start at 1",
            ),
            (
                &[("seq", b"1"), ("ts", b"-1"), ("data", b"x")],
                "field ts is not",
            ),
            (
                &[("seq", b"1"), ("ts", b"1"), ("data", b"\xff")],
                "not UTF-8",
            ),
        ];
        for (pairs, why) in cases {
            let e = decode_entry("7-1", &fields(pairs)).unwrap_err();
            assert_eq!(e.id, "7-1");
            assert!(e.why.contains(why), "{e}");
        }
        let mut odd = ok.clone();
        odd.insert("data".into(), Value::Int(3));
        assert!(decode_entry("1-0", &odd).is_err());
    }

    #[test]
    fn seqs_never_go_back_when_the_counter_is_lost() {
        // A live counter wins over a replica that lags behind it.
        assert_eq!(assign_seq(Some(10), 7), 11);
        // Redis came back empty: the replica's floor carries on, never 1 again.
        assert_eq!(assign_seq(None, 10), 11);
        assert_eq!(assign_seq(None, 0), 1);
        // Re-seeding never lowers a counter another replica already raised.
        assert_eq!(reseed(None, 10), 10);
        assert_eq!(reseed(Some(12), 10), 12);
        assert_eq!(assign_seq(Some(reseed(None, 10)), 3), 11);
    }

    #[test]
    fn keys_and_urls() {
        assert_eq!(seq_key("chat"), "pushlab:chat:seq");
        assert_eq!(topic_of_stream(&stream_key("a:b")), Some("a:b"));
        assert_eq!(topic_of_stream("other"), None);
        assert_eq!(
            shown_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        assert_eq!(
            shown_url("redis://user:secret@127.0.0.1:6379/0"),
            "redis://user:***@127.0.0.1:6379/0"
        );
    }
}
