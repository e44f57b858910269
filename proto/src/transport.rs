//! The five ways pushlab pushes one feed, and their names on the command line, in URLs, in
//! metrics and in result files.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A push transport. The order is the order reports and charts use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// `GET /poll/{topic}?since=SEQ`, answered at once.
    Poll,
    /// `GET /longpoll/{topic}?since=SEQ&timeout=SECS`, held until news or timeout.
    LongPoll,
    /// `GET /sse/{topic}`, `text/event-stream`.
    Sse,
    /// `GET /stream/{topic}?since=SEQ`, chunked `application/x-ndjson`.
    Stream,
    /// `GET /ws/{topic}?since=SEQ` with `Upgrade: websocket`.
    Ws,
}

impl Transport {
    /// Every transport, in report order.
    pub const ALL: [Transport; 5] = [
        Transport::Poll,
        Transport::LongPoll,
        Transport::Sse,
        Transport::Stream,
        Transport::Ws,
    ];

    /// The short name used on the command line, in metrics labels and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Poll => "poll",
            Transport::LongPoll => "longpoll",
            Transport::Sse => "sse",
            Transport::Stream => "stream",
            Transport::Ws => "ws",
        }
    }

    /// A name for people: tables and chart legends.
    pub fn label(self) -> &'static str {
        match self {
            Transport::Poll => "short poll",
            Transport::LongPoll => "long poll",
            Transport::Sse => "SSE",
            Transport::Stream => "chunked stream",
            Transport::Ws => "WebSocket",
        }
    }

    /// The first path segment of this transport's endpoint (`/poll/{topic}` ...).
    pub fn path_segment(self) -> &'static str {
        self.as_str()
    }

    /// Position in [`Transport::ALL`], for per-transport arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Whether one request carries one batch and then ends (poll, long poll).
    pub fn is_request_response(self) -> bool {
        matches!(self, Transport::Poll | Transport::LongPoll)
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error for a transport name that is not one of the five.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown transport {0:?} (expected one of poll, longpoll, sse, stream, ws)")]
pub struct UnknownTransport(pub String);

impl FromStr for Transport {
    type Err = UnknownTransport;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "poll" | "short-poll" | "shortpoll" => Ok(Transport::Poll),
            "longpoll" | "long-poll" => Ok(Transport::LongPoll),
            "sse" | "eventsource" => Ok(Transport::Sse),
            "stream" | "chunked" | "ndjson" => Ok(Transport::Stream),
            "ws" | "websocket" => Ok(Transport::Ws),
            _ => Err(UnknownTransport(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in Transport::ALL {
            assert_eq!(t.as_str().parse::<Transport>().unwrap(), t);
            assert_eq!(Transport::ALL[t.index()], t);
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, format!("\"{}\"", t.as_str()));
        }
        assert!("smoke-signals".parse::<Transport>().is_err());
    }
}
