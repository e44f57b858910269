//! Cursors and names from the outside world: `?since=SEQ&timeout=SECS`, `Last-Event-ID`, topic
//! names. Strict (a malformed cursor is an error, never a silent restart from 0, which would
//! duplicate messages) and total (no input panics).
//!
//! ```text
//! /poll/ticker?since=41            -> Query { since: Some(41), timeout_s: None }
//! /longpoll/ticker?since=41&timeout=30
//! Last-Event-ID: 41
//! ```
//!
//! Unknown query keys are ignored so browsers' cache busters (`_=1712...`) pass.

/// The cursor parameters a subscription request may carry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Query {
    /// The last seq the client has; it wants everything after it. `None`: only new messages.
    pub since: Option<u64>,
    /// Long-poll hold time in seconds.
    pub timeout_s: Option<u64>,
}

/// Why a cursor or name was refused; the text goes into the 400 response's `error`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    #[error("query parameter {name:?} must be a non-negative integer, got {value:?}")]
    NotANumber { name: &'static str, value: String },
    #[error("query parameter {0:?} given more than once")]
    Repeated(&'static str),
    #[error("Last-Event-ID must be a non-negative integer, got {0:?}")]
    BadLastEventId(String),
    #[error("topic name must be 1 to 64 of A-Z a-z 0-9 _ . -, got {0:?}")]
    BadTopic(String),
}

const MAX_ECHO: usize = 40;

fn echo(s: &str) -> String {
    s.chars().take(MAX_ECHO).collect()
}

fn parse_u64(name: &'static str, value: &str) -> Result<u64, CursorError> {
    if value.is_empty() || value.len() > 20 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CursorError::NotANumber {
            name,
            value: echo(value),
        });
    }
    value.parse().map_err(|_| CursorError::NotANumber {
        name,
        value: echo(value),
    })
}

/// Parses the query string of a subscription request (without the leading `?`).
pub fn parse_query(query: Option<&str>) -> Result<Query, CursorError> {
    let mut q = Query::default();
    let Some(query) = query else { return Ok(q) };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (name, slot) = match key {
            "since" => ("since", &mut q.since),
            "timeout" => ("timeout", &mut q.timeout_s),
            _ => continue,
        };
        if slot.is_some() {
            return Err(CursorError::Repeated(name));
        }
        *slot = Some(parse_u64(name, value)?);
    }
    Ok(q)
}

/// Parses an SSE `Last-Event-ID` header value.
pub fn parse_last_event_id(value: &[u8]) -> Result<u64, CursorError> {
    let s = std::str::from_utf8(value)
        .map_err(|_| CursorError::BadLastEventId(String::from_utf8_lossy(value).into_owned()))?;
    parse_u64("Last-Event-ID", s.trim()).map_err(|_| CursorError::BadLastEventId(echo(s)))
}

/// Whether `name` is a valid topic: 1 to 64 of `A-Z a-z 0-9 _ . -`.
pub fn valid_topic(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Checks a topic name, with the reason when it is not valid.
pub fn check_topic(name: &str) -> Result<&str, CursorError> {
    if valid_topic(name) {
        Ok(name)
    } else {
        Err(CursorError::BadTopic(echo(name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries() {
        assert_eq!(parse_query(None).unwrap(), Query::default());
        assert_eq!(
            parse_query(Some("since=41&timeout=30&_=123")).unwrap(),
            Query {
                since: Some(41),
                timeout_s: Some(30)
            }
        );
        assert_eq!(parse_query(Some("&&")).unwrap(), Query::default());
        for bad in [
            "since=",
            "since=-1",
            "since=1e3",
            "since=99999999999999999999999",
            "since=1&since=2",
            "timeout=x",
            "since",
        ] {
            assert!(parse_query(Some(bad)).is_err(), "{bad}");
        }
        assert_eq!(
            parse_query(Some("since=18446744073709551615"))
                .unwrap()
                .since,
            Some(u64::MAX)
        );
        assert!(parse_query(Some("since=18446744073709551616")).is_err());
    }

    #[test]
    fn last_event_id() {
        assert_eq!(parse_last_event_id(b"17").unwrap(), 17);
        assert_eq!(parse_last_event_id(b" 17 ").unwrap(), 17);
        assert!(parse_last_event_id(b"abc").is_err());
        assert!(parse_last_event_id(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn topics() {
        assert!(valid_topic("ticker"));
        assert!(valid_topic("chat.room_1-A"));
        assert!(valid_topic(&"a".repeat(64)));
        assert!(!valid_topic(&"a".repeat(65)));
        assert!(!valid_topic(""));
        assert!(!valid_topic("a/b"));
        assert!(!valid_topic("é"));
        assert!(check_topic("a b").is_err());
    }
}
