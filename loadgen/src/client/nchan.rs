//! nginx with the nchan module as a target (`--target-profile nchan`): the peer server the
//! lab measures pushlab-server against, driven through the same subscribers.
//!
//! The publisher posts a whole pushlab MESSAGE (it numbers the messages itself, nchan does
//! not), so every subscriber receives the bytes it would get from pushlab-server and the same
//! decoder, sequence check and latency apply; only paths, cursors and framing differ. The
//! nginx config it expects is `scripts/nchan/nginx.conf.template` (`scripts/nchan/run.sh`).
//!
//! ```text
//! POST /pub/T  Content-Type: application/json  MESSAGE  -> 201/202 text ".. last message id: 1795328898:0"
//! GET /sub/poll/T   (intervalpoll)  If-Modified-Since: <date of time>  If-None-Match: <tag>
//!   -> 200 MESSAGE (one per request) + Last-Modified/Etag of it, or 304 when nothing is new
//! GET /sub/lp/T     (longpoll)      same cursor headers; held until news, 408 after 30 s
//!   -> 200 MESSAGE, or for several: multipart/mixed
//!      --B\r\nContent-Type: application/json\r\n\r\nMESSAGE\r\n--B\r\n...MESSAGE\r\n--B--\r\n
//! GET /sub/sse/T    Accept: text/event-stream (+ Last-Event-ID: time:tag)   until EOF:
//!   : hi\n\n  id: 1795328898:0\ndata: MESSAGE\n\n
//! GET /sub/stream/T TE: chunked (+ ?last_event_id=time:tag)   one chunk per MESSAGE, no separator
//! GET /sub/ws/T     Upgrade (+ ?last_event_id=time:tag)        one text frame per MESSAGE
//! ```
//!
//! # Cursors
//!
//! nchan's message id is `time:tag` (publish second, index within it). Poll and long poll
//! resume from the previous response's `Last-Modified` + `Etag`, SSE from the last event's
//! `id:`: both come on the wire, and the subscriber keeps the last one as its token. WebSocket
//! and chunked streams carry no ids (nchan would add them only with the `ws+meta.nchan`
//! subprotocol, which changes the framing measured), so on a reconnect these resume with
//! `?last_event_id=` (honoured by nchan for every subscriber type) set to the id the publisher
//! got back for the cursor's seq. That shortcut is the lab's (it is the publisher); a real
//! client of these two transports cannot resume exactly. Should the publisher not have read the
//! id yet, the nearest older one is used and the repeats count as duplicates.
//!
//! nchan sends no gap notice: a subscriber that falls more than the channel's buffer behind
//! (4096 messages in the template) misses messages, and they count as lost.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, UNIX_EPOCH};

use pushlab_proto::{encode_message, Gap, Transport};
use serde::de::IgnoredAny;

use super::dialect::{Batch, Decoded, Dialect, PublishBody, PushlabDialect};
use crate::http::{find, preview, ClientError, Head};

/// nginx-nchan's protocol.
#[derive(Debug, Default)]
pub struct NchanDialect {
    /// The id nchan gave each message the publisher got an answer for, per channel.
    ids: Mutex<HashMap<String, BTreeMap<u64, String>>>,
}

impl NchanDialect {
    /// The id of `seq` on `topic`, or of the newest message before it the publisher knows.
    fn id_at_or_before(&self, topic: &str, seq: u64) -> Option<String> {
        let ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
        ids.get(topic)?
            .range(..=seq)
            .next_back()
            .map(|(_, id)| id.clone())
    }
}

/// `time:tag` -> (time, tag).
fn split_id(id: &str) -> Option<(u64, &str)> {
    let (time, tag) = id.split_once(':')?;
    Some((time.parse().ok()?, tag))
}

/// The `boundary` parameter of a `multipart/...` content type.
fn boundary_of(content_type: &str) -> Option<&str> {
    let (kind, params) = content_type.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("multipart/mixed") {
        return None;
    }
    params.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"'))
    })
}

/// The parts of a multipart body (RFC 2046), each as the bytes of its content; the rest
/// (delimiters, part headers, epilogue) is framing.
fn multipart_parts<'a>(body: &'a [u8], boundary: &str) -> Result<Vec<&'a [u8]>, String> {
    let delim = format!("--{boundary}");
    let mut inner = Vec::with_capacity(delim.len() + 2);
    inner.extend_from_slice(b"\r\n");
    inner.extend_from_slice(delim.as_bytes());
    let mut rest = body
        .strip_prefix(delim.as_bytes())
        .ok_or("does not start with its boundary")?;
    let mut parts = Vec::new();
    loop {
        if rest.starts_with(b"--") {
            return Ok(parts); // the close delimiter; what follows is epilogue
        }
        rest = rest
            .strip_prefix(b"\r\n")
            .ok_or("no CRLF after a boundary")?;
        let start = if rest.starts_with(b"\r\n") {
            2
        } else {
            find(rest, b"\r\n\r\n").ok_or("a part's headers do not end")? + 4
        };
        let data = &rest[start..];
        let end = find(data, &inner).ok_or("a part does not end")?;
        parts.push(&data[..end]);
        rest = &data[end + inner.len()..];
    }
}

impl Dialect for NchanDialect {
    fn name(&self) -> &'static str {
        "nchan"
    }

    fn subscribe_path(
        &self,
        transport: Transport,
        topic: &str,
        cursor: u64,
        start_cursor: u64,
        _longpoll_timeout_s: u64,
    ) -> String {
        let location = match transport {
            Transport::Poll => "poll",
            Transport::LongPoll => "lp",
            Transport::Sse => "sse",
            Transport::Stream => "stream",
            Transport::Ws => "ws",
        };
        let mut path = format!("/sub/{location}/{topic}");
        if matches!(transport, Transport::Stream | Transport::Ws) && cursor > start_cursor {
            if let Some(id) = self.id_at_or_before(topic, cursor) {
                path.push_str("?last_event_id=");
                path.push_str(&id);
            }
        }
        path
    }

    fn subscribe_headers(
        &self,
        transport: Transport,
        _cursor: u64,
        token: Option<&str>,
        _first: bool,
    ) -> Vec<(String, String)> {
        let mut h = Vec::new();
        match transport {
            Transport::Poll | Transport::LongPoll => {
                if let Some((time, tag)) = token.and_then(split_id) {
                    let date = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(time));
                    h.push(("If-Modified-Since".into(), date));
                    h.push(("If-None-Match".into(), tag.into()));
                }
            }
            Transport::Sse => {
                // nchan answers 403 to an eventsource subscriber that does not accept it.
                h.push(("Accept".into(), "text/event-stream".into()));
                if let Some(id) = token {
                    h.push(("Last-Event-ID".into(), id.into()));
                }
            }
            // Likewise for http-chunked without TE.
            Transport::Stream => h.push(("TE".into(), "chunked".into())),
            Transport::Ws => {}
        }
        h
    }

    fn token_from_head(&self, head: &Head) -> Option<String> {
        let time = httpdate::parse_http_date(head.header("last-modified")?).ok()?;
        let secs = time.duration_since(UNIX_EPOCH).ok()?.as_secs();
        let tag = head.header("etag")?;
        let tag = tag.strip_prefix("W/").unwrap_or(tag).trim_matches('"');
        Some(format!("{secs}:{tag}"))
    }

    fn no_news(&self, status: u16) -> bool {
        status == 304 || status == 408
    }

    fn publish_path(&self, topic: &str) -> String {
        format!("/pub/{topic}")
    }

    fn publish_body(&self, topic: &str, seq: u64, due_ns: u64, data: &str) -> PublishBody {
        PublishBody {
            content_type: "application/json",
            body: encode_message(topic, seq, due_ns, data).bytes.to_vec(),
        }
    }

    /// `201` (subscribers present) or `202`, with a text body whose last line is
    /// `last message id: TIME:TAG`.
    fn publish_answer(
        &self,
        topic: &str,
        seq: u64,
        status: u16,
        body: &[u8],
    ) -> Result<u64, ClientError> {
        if !(200..=202).contains(&status) {
            return Err(ClientError::Status {
                status,
                body: preview(body),
            });
        }
        let text = String::from_utf8_lossy(body);
        let id = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("last message id:"))
            .map(str::trim)
            .filter(|id| split_id(id).is_some())
            .ok_or_else(|| {
                ClientError::Protocol(format!(
                    "nchan publish answer without a message id: {:?}",
                    preview(body)
                ))
            })?;
        let mut ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
        ids.entry(topic.to_string())
            .or_default()
            .insert(seq, id.to_string());
        Ok(seq)
    }

    fn decode_message(&self, bytes: &[u8]) -> Result<Decoded, ClientError> {
        PushlabDialect.decode_message(bytes)
    }

    fn decode_gap(&self, _bytes: &[u8]) -> Option<Gap> {
        None
    }

    fn decode_batch(&self, head: &Head, body: &[u8]) -> Result<Batch, ClientError> {
        let parts = match head.header("content-type").and_then(boundary_of) {
            Some(b) => multipart_parts(body, b).map_err(|why| {
                ClientError::Protocol(format!("multipart body {why}: {:?}", preview(body)))
            })?,
            None => vec![body],
        };
        let messages = parts
            .into_iter()
            .map(|p| Ok((self.decode_message(p)?, p.len() as u64)))
            .collect::<Result<Vec<_>, ClientError>>()?;
        Ok(Batch {
            gap: None,
            more: !messages.is_empty(),
            messages,
        })
    }

    /// Messages follow each other with nothing between (each is one chunk): the first item
    /// ends where its JSON value does.
    fn next_stream_item(&self, body: &[u8]) -> Result<Option<(usize, usize)>, ClientError> {
        let mut values = serde_json::Deserializer::from_slice(body).into_iter::<IgnoredAny>();
        match values.next() {
            None => Ok(None),
            Some(Ok(_)) => {
                let end = values.byte_offset();
                Ok(Some((end, end)))
            }
            Some(Err(e)) if e.is_eof() => Ok(None),
            Some(Err(e)) => Err(ClientError::Protocol(format!(
                "chunked stream item ({e}): {:?}",
                preview(body)
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;

    fn head(text: &str) -> Head {
        crate::http::parse_head(&mut BytesMut::from(text.as_bytes()))
            .unwrap()
            .unwrap()
    }

    fn message(seq: u64) -> Vec<u8> {
        let data = crate::publisher::stamp(1_700_000_000_000_000_000 + seq, 32);
        encode_message("t", seq, 5, &data).bytes.to_vec()
    }

    #[test]
    fn multipart_batches_split_exactly() {
        // As nginx-nchan 1.3.6 sends them (boundaries may hold '/' and '.').
        let b = "NksC8Mr9N4S4T1Lp4Mr8agm4qFVUbPW/";
        let (m1, m2) = (message(1), message(2));
        let mut body = Vec::new();
        for m in [&m1, &m2] {
            body.extend_from_slice(
                format!("--{b}\r\nContent-Type: application/json\r\n\r\n").as_bytes(),
            );
            body.extend_from_slice(m);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{b}--\r\n").as_bytes());
        let h = head(&format!(
            "HTTP/1.1 200 OK\r\nContent-Type: multipart/mixed; boundary={b}\r\nContent-Length: {}\r\nLast-Modified: Sun, 22 Nov 2026 06:45:35 GMT\r\nEtag: 2\r\n\r\n",
            body.len()
        ));
        let batch = NchanDialect::default().decode_batch(&h, &body).unwrap();
        assert!(batch.more);
        let seqs: Vec<u64> = batch.messages.iter().map(|(d, _)| d.seq).collect();
        assert_eq!(seqs, [1, 2]);
        let message_bytes: u64 = batch.messages.iter().map(|(_, n)| n).sum();
        assert_eq!(message_bytes, (m1.len() + m2.len()) as u64);
        // The rest of the body is the framing poll.rs attributes: delimiters, part headers.
        let framing = body.len() as u64 - message_bytes;
        let part_head = format!("--{b}\r\nContent-Type: application/json\r\n\r\n").len() + 2;
        assert_eq!(
            framing as usize,
            2 * part_head + format!("--{b}--\r\n").len()
        );

        // One waiting message comes bare, as published.
        let one =
            head("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1\r\n\r\n");
        let batch = NchanDialect::default().decode_batch(&one, &m1).unwrap();
        assert_eq!(
            batch.messages,
            vec![(PushlabDialect.decode_message(&m1).unwrap(), m1.len() as u64)]
        );

        for bad in [&b"garbage"[..], format!("--{b}\r\n\r\nno end").as_bytes()] {
            assert!(NchanDialect::default().decode_batch(&h, bad).is_err());
        }
    }

    #[test]
    fn poll_cursor_round_trips_through_the_head() {
        let d = NchanDialect::default();
        let h = head("HTTP/1.1 304 Not Modified\r\nContent-Length: 0\r\nLast-Modified: Sun, 22 Nov 2026 06:28:18 GMT\r\nEtag: 1\r\n\r\n");
        let token = d.token_from_head(&h).unwrap();
        assert_eq!(token, "1795328898:1");
        let hs = d.subscribe_headers(Transport::Poll, 9, Some(&token), false);
        assert_eq!(
            hs,
            vec![
                (
                    "If-Modified-Since".to_string(),
                    "Sun, 22 Nov 2026 06:28:18 GMT".to_string()
                ),
                ("If-None-Match".to_string(), "1".to_string()),
            ]
        );
        assert!(d
            .subscribe_headers(Transport::LongPoll, 0, None, true)
            .is_empty());
        let none = head("HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(d.token_from_head(&none), None);
        assert!(d.no_news(304) && d.no_news(408) && !d.no_news(200) && !d.no_news(500));
        let sse = d.subscribe_headers(Transport::Sse, 3, Some("1795328898:2"), false);
        assert!(sse.contains(&("Accept".into(), "text/event-stream".into())));
        assert!(sse.contains(&("Last-Event-ID".into(), "1795328898:2".into())));
        assert_eq!(
            d.subscribe_headers(Transport::Stream, 0, None, true)[0].0,
            "TE"
        );
    }

    #[test]
    fn streams_resume_from_the_publishers_ids() {
        let d = NchanDialect::default();
        let body = d.publish_body("t", 1, 5, "x");
        assert_eq!(body.content_type, "application/json");
        assert_eq!(body.body, encode_message("t", 1, 5, "x").bytes.to_vec());
        let answer = b"queued messages: 1\nlast requested: 0 sec. ago\nactive subscribers: 3\nlast message id: 1795328898:0";
        assert_eq!(d.publish_answer("t", 1, 201, answer).unwrap(), 1);
        let second = String::from_utf8_lossy(answer).replace(":0", ":1");
        d.publish_answer("t", 2, 202, second.as_bytes()).unwrap();
        // First subscription: from the oldest message, no cursor.
        assert_eq!(d.subscribe_path(Transport::Ws, "t", 0, 0, 30), "/sub/ws/t");
        assert_eq!(
            d.subscribe_path(Transport::Stream, "t", 1, 0, 30),
            "/sub/stream/t?last_event_id=1795328898:0"
        );
        // Seq 3's id not known yet: the newest known before it (repeats count as duplicates).
        assert_eq!(
            d.subscribe_path(Transport::Ws, "t", 3, 0, 30),
            "/sub/ws/t?last_event_id=1795328898:1"
        );
        assert_eq!(
            d.subscribe_path(Transport::Poll, "t", 3, 0, 30),
            "/sub/poll/t"
        );
        assert_eq!(
            d.subscribe_path(Transport::LongPoll, "t", 3, 0, 30),
            "/sub/lp/t"
        );
        assert!(matches!(
            d.publish_answer("t", 3, 403, b""),
            Err(ClientError::Status { status: 403, .. })
        ));
        assert!(d
            .publish_answer("t", 3, 202, b"queued messages: 1")
            .is_err());
    }

    #[test]
    fn chunked_items_end_with_their_json_value() {
        let d = NchanDialect::default();
        let (m1, m2) = (message(1), message(2));
        let mut body = m1.clone();
        body.extend_from_slice(&m2);
        for cut in 0..body.len() {
            let got = d.next_stream_item(&body[..cut]).unwrap();
            if cut < m1.len() {
                assert_eq!(got, None, "{cut}");
            } else {
                assert_eq!(got, Some((m1.len(), m1.len())), "{cut}");
            }
        }
        assert_eq!(
            d.next_stream_item(&body[m1.len()..]).unwrap(),
            Some((m2.len(), m2.len()))
        );
        assert!(d.next_stream_item(b"]nope").is_err());
    }
}
