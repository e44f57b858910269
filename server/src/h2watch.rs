//! Counts the refusals HTTP/2 makes inside h2, where hyper never sees them: streams past
//! SETTINGS_MAX_CONCURRENT_STREAMS, stream errors, and h2's own 431 for a header list past its
//! limit. h2 answers each with frames on the connection and carries on, so the only place
//! to see them is the bytes the server writes: [`H2Watch`] sits on the plaintext of an HTTP/2
//! connection and reads the frame headers going out (RFC 9113 §4.1), nothing else.
//!
//! ```text
//! server -> client   length(3) type(1) flags(1) stream(4) payload
//! RST_STREAM (0x3)   error code(4)                       REFUSED_STREAM        -> h2_refused_stream
//!                                                        PROTOCOL_ERROR, ...   -> h2_stream_error
//! HEADERS (0x1)      END_STREAM, a bare `:status` (<= 8 B): h2's 431     -> header_too_large
//! ```
//!
//! | refusal (RFC 9113) | what h2 writes | `pushlab_rejected_total{reason}` |
//! |---|---|---|
//! | a stream past the concurrency limit (§5.1.2) | RST_STREAM REFUSED_STREAM | `h2_refused_stream` |
//! | a stream error (§5.4.2): PROTOCOL_ERROR, FLOW_CONTROL_ERROR, STREAM_CLOSED, FRAME_SIZE_ERROR | RST_STREAM | `h2_stream_error` |
//! | a header list past h2's limit (§10.5.1; RFC 6585 431) | HEADERS `:status 431` END_STREAM (a reset after it is not counted again) | `header_too_large` |
//! | a connection error (§5.4.1), rapid reset | GOAWAY | counted from hyper's error instead ([`crate::guard::connection_error`]) |
//!
//! RST_STREAM with NO_ERROR or CANCEL is hyper closing a stream it is done with (a response
//! sent before the request body was read, a body dropped), and INTERNAL_ERROR is the server's
//! own failure: neither is a refusal. The server's own responses always carry content-type,
//! so a HEADERS frame of at most [`BARE_STATUS_MAX_BYTES`] that ends its stream is h2's.
//!
//! On a cleartext connection the watch turns itself on only once the client's preface (`PRI *
//! HTTP/2.0...`) has been read; on HTTP/1.1 it steps aside after the first bytes.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::metrics::{Metrics, Rejection};

/// The client connection preface (RFC 9113 §3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER_LEN: usize = 9;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

/// RFC 9113 §7 error codes that mean h2 refused the peer's stream.
const PROTOCOL_ERROR: u32 = 0x1;
const FLOW_CONTROL_ERROR: u32 = 0x3;
const STREAM_CLOSED: u32 = 0x5;
const FRAME_SIZE_ERROR: u32 = 0x6;
const REFUSED_STREAM: u32 = 0x7;

/// The largest header block of a bare `:status` response: HPACK codes `:status 431` as a
/// literal with the indexed name `:status` (1 B) and a 3-digit value (at most 4 B), or as one
/// indexed byte once it is in the dynamic table. The server's own responses are far larger.
pub const BARE_STATUS_MAX_BYTES: usize = 8;

/// Streams whose last answer was a bare `:status` HEADERS (h2's 431), the newest few.
const BARE_STREAMS_KEPT: usize = 8;

/// What an outgoing RST_STREAM with `code` refuses, if anything (`after_bare_status`: the
/// stream's answer was h2's own 431, already counted).
pub fn classify_reset(code: u32, after_bare_status: bool) -> Option<Rejection> {
    match code {
        // h2's 431 was counted when it went out; the reset after it is the same refusal.
        _ if after_bare_status => None,
        REFUSED_STREAM => Some(Rejection::H2RefusedStream),
        PROTOCOL_ERROR | FLOW_CONTROL_ERROR | STREAM_CLOSED | FRAME_SIZE_ERROR => {
            Some(Rejection::H2StreamError)
        }
        _ => None,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Cleartext: reading the client's first bytes, `matched` of the preface so far.
    Detect {
        matched: usize,
    },
    On,
    Off,
}

/// A parser of the frame headers one server writes (see the module doc), independent of I/O.
#[derive(Debug)]
pub struct FrameWatch {
    mode: Mode,
    header: [u8; FRAME_HEADER_LEN],
    have: usize,
    /// Payload bytes of the current frame still to skip (after any captured).
    skip: u64,
    /// An RST_STREAM's error code being read: (stream, bytes so far, code so far).
    reset: Option<(u32, usize, u32)>,
    bare: [u32; BARE_STREAMS_KEPT],
    bare_next: usize,
}

impl FrameWatch {
    /// `h2` known (ALPN said so): watching from the first byte written. Otherwise the client's
    /// preface decides.
    pub fn new(h2: bool) -> FrameWatch {
        FrameWatch {
            mode: if h2 {
                Mode::On
            } else {
                Mode::Detect { matched: 0 }
            },
            header: [0; FRAME_HEADER_LEN],
            have: 0,
            skip: 0,
            reset: None,
            bare: [0; BARE_STREAMS_KEPT],
            bare_next: 0,
        }
    }

    /// Whether the watch still has work (not HTTP/1.1).
    pub fn is_active(&self) -> bool {
        self.mode != Mode::Off
    }

    /// The client sent `bytes`: checks them against the preface while undecided.
    pub fn on_read(&mut self, bytes: &[u8]) {
        let Mode::Detect { matched } = self.mode else {
            return;
        };
        let n = (PREFACE.len() - matched).min(bytes.len());
        self.mode = if bytes[..n] != PREFACE[matched..matched + n] {
            Mode::Off
        } else if matched + n == PREFACE.len() {
            Mode::On
        } else {
            Mode::Detect {
                matched: matched + n,
            }
        };
    }

    /// The server wrote `bytes`: returns each refusal found in them, in order.
    pub fn on_written(&mut self, mut bytes: &[u8], mut refused: impl FnMut(Rejection)) {
        if self.mode != Mode::On {
            return;
        }
        while !bytes.is_empty() {
            if let Some((stream, got, code)) = self.reset {
                let n = (4 - got).min(bytes.len());
                let code = bytes[..n]
                    .iter()
                    .fold(code, |c, b| (c << 8) | u32::from(*b));
                bytes = &bytes[n..];
                if got + n < 4 {
                    self.reset = Some((stream, got + n, code));
                    continue;
                }
                self.reset = None;
                if let Some(why) = classify_reset(code, self.bare.contains(&stream)) {
                    refused(why);
                }
                continue;
            }
            if self.skip > 0 {
                let n = (self.skip as usize).min(bytes.len());
                self.skip -= n as u64;
                bytes = &bytes[n..];
                continue;
            }
            let n = (FRAME_HEADER_LEN - self.have).min(bytes.len());
            self.header[self.have..self.have + n].copy_from_slice(&bytes[..n]);
            self.have += n;
            bytes = &bytes[n..];
            if self.have == FRAME_HEADER_LEN {
                self.have = 0;
                if let Some(why) = self.frame_header() {
                    refused(why);
                }
            }
        }
    }

    /// Reads the frame header just completed; h2's bare 431 is a refusal by itself.
    fn frame_header(&mut self) -> Option<Rejection> {
        let h = self.header;
        let len = u64::from(h[0]) << 16 | u64::from(h[1]) << 8 | u64::from(h[2]);
        let (kind, flags) = (h[3], h[4]);
        let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
        self.skip = len;
        match kind {
            RST_STREAM if len == 4 => {
                self.skip = 0;
                self.reset = Some((stream, 0, 0));
            }
            HEADERS
                if flags & (END_STREAM | END_HEADERS) == END_STREAM | END_HEADERS
                    && len as usize <= BARE_STATUS_MAX_BYTES
                    && stream != 0 =>
            {
                self.bare[self.bare_next] = stream;
                self.bare_next = (self.bare_next + 1) % BARE_STREAMS_KEPT;
                return Some(Rejection::HeaderTooLarge);
            }
            _ => {}
        }
        None
    }
}

/// An HTTP/2 connection's plaintext with a [`FrameWatch`] on it, counting each refusal in
/// `metrics`.
pub struct H2Watch<S> {
    inner: S,
    watch: FrameWatch,
    metrics: Arc<Metrics>,
}

impl<S> H2Watch<S> {
    /// Watches `inner`; `h2` when the protocol is known to be HTTP/2 (ALPN `h2`).
    pub fn new(inner: S, metrics: Arc<Metrics>, h2: bool) -> H2Watch<S> {
        H2Watch {
            inner,
            watch: FrameWatch::new(h2),
            metrics,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for H2Watch<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let me = &mut *self;
        let polled = Pin::new(&mut me.inner).poll_read(cx, buf);
        if me.watch.is_active() {
            me.watch.on_read(&buf.filled()[before..]);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for H2Watch<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = &mut *self;
        let polled = Pin::new(&mut me.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            let metrics = &me.metrics;
            me.watch.on_written(&buf[..n], |why| metrics.reject(why));
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let me = &mut *self;
        let polled = Pin::new(&mut me.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(mut n)) = polled {
            let metrics = &me.metrics;
            for b in bufs {
                if n == 0 {
                    break;
                }
                let take = n.min(b.len());
                me.watch.on_written(&b[..take], |why| metrics.reject(why));
                n -= take;
            }
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    /// Every refusal in `written`, fed in pieces of `piece` bytes.
    fn refusals(h2: bool, read: &[u8], written: &[u8], piece: usize) -> Vec<Rejection> {
        let mut w = FrameWatch::new(h2);
        w.on_read(read);
        let mut out = Vec::new();
        for chunk in written.chunks(piece) {
            w.on_written(chunk, |r| out.push(r));
        }
        out
    }

    fn server_bytes() -> Vec<u8> {
        let mut b = frame(0x4, 0, 0, &[0, 3, 0, 0, 0, 4]); // SETTINGS
        b.extend(frame(HEADERS, END_HEADERS, 1, &[0x88; 40])); // the server's own response
        b.extend(frame(0x0, END_STREAM, 1, b"{\"next\":0}"));
        b.extend(frame(RST_STREAM, 0, 1, &0u32.to_be_bytes())); // NO_ERROR: not a refusal
        b.extend(frame(RST_STREAM, 0, 9, &REFUSED_STREAM.to_be_bytes()));
        b.extend(frame(RST_STREAM, 0, 11, &8u32.to_be_bytes())); // CANCEL
        b.extend(frame(
            HEADERS,
            END_STREAM | END_HEADERS,
            13,
            &[0x48, 0x83, 0x64, 0x10, 0x7f],
        ));
        b.extend(frame(RST_STREAM, 0, 13, &PROTOCOL_ERROR.to_be_bytes()));
        b.extend(frame(RST_STREAM, 0, 15, &STREAM_CLOSED.to_be_bytes()));
        b.extend(frame(0x7, 0, 0, &[0, 0, 0, 15, 0, 0, 0, 0xb])); // GOAWAY: not here
        b
    }

    #[test]
    fn refusals_are_read_from_frames_in_any_pieces() {
        let want = vec![
            Rejection::H2RefusedStream,
            Rejection::HeaderTooLarge,
            Rejection::H2StreamError,
        ];
        for piece in [1, 2, 3, 5, 9, 13, 4096] {
            assert_eq!(refusals(true, b"", &server_bytes(), piece), want, "{piece}");
        }
    }

    #[test]
    fn cleartext_waits_for_the_preface() {
        let mut preface_then = PREFACE.to_vec();
        preface_then.extend(frame(0x4, 0, 0, &[]));
        assert_eq!(refusals(false, &preface_then, &server_bytes(), 7).len(), 3);
        // HTTP/1.1: the watch steps aside and reads nothing as frames.
        let h1 = b"GET /poll/t?since=0 HTTP/1.1\r\nHost: x\r\n\r\n";
        assert!(refusals(false, h1, &server_bytes(), 7).is_empty());
        let mut w = FrameWatch::new(false);
        w.on_read(h1);
        assert!(!w.is_active());
        // Undecided: nothing counted.
        assert!(refusals(false, &PREFACE[..10], &server_bytes(), 7).is_empty());
    }

    #[test]
    fn only_refusing_codes_count() {
        assert_eq!(classify_reset(0x0, false), None); // NO_ERROR
        assert_eq!(classify_reset(0x8, false), None); // CANCEL
        assert_eq!(classify_reset(0x2, false), None); // INTERNAL_ERROR: the server's own
        assert_eq!(
            classify_reset(FLOW_CONTROL_ERROR, false),
            Some(Rejection::H2StreamError)
        );
        assert_eq!(
            classify_reset(FRAME_SIZE_ERROR, false),
            Some(Rejection::H2StreamError)
        );
        assert_eq!(classify_reset(REFUSED_STREAM, true), None);
        assert_eq!(classify_reset(PROTOCOL_ERROR, true), None);
    }
}
