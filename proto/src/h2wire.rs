//! Splits one direction of an HTTP/2 connection's bytes (RFC 9113) into what they carry, as
//! they cross the socket: the lab's byte split on HTTP/2 without trusting the HTTP/2 library.
//!
//! ```text
//! client -> server: PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n  SETTINGS  SETTINGS(ACK)  HEADERS ...
//! server -> client:                               SETTINGS  SETTINGS(ACK)  HEADERS  DATA ...
//! every frame:      length(3) type(1) flags(1) stream id(4)  payload(length)
//! ```
//!
//! | bytes | category |
//! |---|---|
//! | the client preface, each side's first SETTINGS and first SETTINGS ACK (whole frames) | handshake |
//! | HEADERS and CONTINUATION header block fragments (HPACK) | headers |
//! | frame headers of HEADERS, CONTINUATION and DATA; pad length, padding, priority fields | framing |
//! | DATA payload (the HTTP body, split further by the transport's parser) | data |
//! | SETTINGS, WINDOW_UPDATE, PING, PRIORITY, RST_STREAM, GOAWAY, unknown types (whole frames) | control |
//!
//! The parts always sum to the bytes pushed ([`H2Split::total`]). Bytes that are not HTTP/2
//! (a wrong preface, a truncated frame at close) stay in the parser and are reported by
//! [`H2WireParser::pending`]; the caller counts them as unattributed.
//!
//! The parser also records the size of every header block (the HPACK-compressed fields of one
//! request or response, frame headers excluded), in order, so the first and later blocks on a
//! connection can be told apart ([`H2WireParser::take_header_blocks`]).

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Bytes of every frame header (RFC 9113 §4.1).
pub const FRAME_HEADER_LEN: usize = 9;

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const SETTINGS: u8 = 0x4;
const PUSH_PROMISE: u8 = 0x5;
const CONTINUATION: u8 = 0x9;

const FLAG_ACK: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const FLAG_PADDED: u8 = 0x8;
const FLAG_PRIORITY: u8 = 0x20;

/// Bytes of one direction by what they carry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct H2Split {
    pub handshake: u64,
    pub headers: u64,
    pub framing: u64,
    /// DATA frame payload without padding: the HTTP body.
    pub data: u64,
    pub control: u64,
}

impl H2Split {
    pub fn total(&self) -> u64 {
        self.handshake + self.headers + self.framing + self.data + self.control
    }
}

/// Which end of the connection sends the bytes parsed (only the client sends the preface).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sender {
    Client,
    Server,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Body {
    /// Whole frame goes to one category.
    Whole(Category),
    /// DATA or HEADERS/CONTINUATION: `prefix` bytes of pad length/priority, then content,
    /// then `pad` bytes of padding; the pad length is read from the payload's first byte.
    Padded { kind: u8, flags: u8 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Category {
    Handshake,
    Control,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Preface {
        matched: usize,
    },
    Header {
        have: usize,
    },
    Payload {
        body: Body,
        left: u64,
        content: u64,
        pad: u64,
        first: bool,
    },
}

/// A streaming parser for one direction of one HTTP/2 connection. Feed it bytes in any
/// pieces; read the running split from [`H2WireParser::split`].
#[derive(Clone, Debug)]
pub struct H2WireParser {
    state: State,
    header: [u8; FRAME_HEADER_LEN],
    /// The first SETTINGS and the first SETTINGS ACK of this direction were seen.
    settings_seen: bool,
    settings_ack_seen: bool,
    /// Header block bytes of the block being read (HEADERS then CONTINUATIONs).
    block: u64,
    blocks: Vec<u64>,
    split: H2Split,
    /// Not HTTP/2: everything after this is left pending.
    broken: bool,
    pending: u64,
}

impl H2WireParser {
    pub fn new(sender: Sender) -> H2WireParser {
        H2WireParser {
            state: match sender {
                Sender::Client => State::Preface { matched: 0 },
                Sender::Server => State::Header { have: 0 },
            },
            header: [0; FRAME_HEADER_LEN],
            settings_seen: false,
            settings_ack_seen: false,
            block: 0,
            blocks: Vec::new(),
            split: H2Split::default(),
            broken: false,
            pending: 0,
        }
    }

    /// The bytes attributed so far.
    pub fn split(&self) -> H2Split {
        self.split
    }

    /// Bytes pushed but not (yet) attributed: inside a frame not complete yet, or after bytes
    /// that were not HTTP/2.
    pub fn pending(&self) -> u64 {
        self.pending
    }

    /// Whether this direction has carried its first SETTINGS ACK (the client's: it has
    /// applied the server's first SETTINGS, RFC 9113 §6.5.3).
    pub fn settings_acknowledged(&self) -> bool {
        self.settings_ack_seen
    }

    /// Whether the bytes seen were not HTTP/2 (a wrong preface).
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Sizes of the complete header blocks since the last call, in order (HPACK bytes of each
    /// request or response; frame headers, padding and priority fields excluded).
    pub fn take_header_blocks(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.blocks)
    }

    /// Attributes `bytes`, the next bytes this direction sent.
    pub fn push(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.broken {
                self.pending += bytes.len() as u64;
                return;
            }
            let used = match self.state {
                State::Preface { matched } => self.preface(matched, bytes),
                State::Header { have } => self.frame_header(have, bytes),
                State::Payload { .. } => self.payload(bytes),
            };
            bytes = &bytes[used..];
        }
    }

    fn preface(&mut self, matched: usize, bytes: &[u8]) -> usize {
        let n = (PREFACE.len() - matched).min(bytes.len());
        if bytes[..n] != PREFACE[matched..matched + n] {
            self.broken = true;
            self.pending += matched as u64;
            self.split.handshake -= matched as u64;
            return 0;
        }
        self.split.handshake += n as u64;
        self.state = if matched + n == PREFACE.len() {
            State::Header { have: 0 }
        } else {
            State::Preface {
                matched: matched + n,
            }
        };
        n
    }

    fn frame_header(&mut self, have: usize, bytes: &[u8]) -> usize {
        let n = (FRAME_HEADER_LEN - have).min(bytes.len());
        self.header[have..have + n].copy_from_slice(&bytes[..n]);
        self.pending += n as u64;
        if have + n < FRAME_HEADER_LEN {
            self.state = State::Header { have: have + n };
            return n;
        }
        self.pending -= FRAME_HEADER_LEN as u64;
        let h = self.header;
        let len = u64::from(h[0]) << 16 | u64::from(h[1]) << 8 | u64::from(h[2]);
        let (kind, flags) = (h[3], h[4]);
        let body = match kind {
            DATA | HEADERS | CONTINUATION | PUSH_PROMISE => {
                self.split.framing += FRAME_HEADER_LEN as u64;
                Body::Padded { kind, flags }
            }
            SETTINGS => {
                let first = if flags & FLAG_ACK != 0 {
                    !std::mem::replace(&mut self.settings_ack_seen, true)
                } else {
                    !std::mem::replace(&mut self.settings_seen, true)
                };
                let c = if first {
                    Category::Handshake
                } else {
                    Category::Control
                };
                self.add(c, FRAME_HEADER_LEN as u64);
                Body::Whole(c)
            }
            _ => {
                self.split.control += FRAME_HEADER_LEN as u64;
                Body::Whole(Category::Control)
            }
        };
        self.state = State::Payload {
            body,
            left: len,
            content: len,
            pad: 0,
            first: true,
        };
        self.end_frame_if_empty();
        n
    }

    fn add(&mut self, c: Category, n: u64) {
        match c {
            Category::Handshake => self.split.handshake += n,
            Category::Control => self.split.control += n,
        }
    }

    fn payload(&mut self, bytes: &[u8]) -> usize {
        let State::Payload {
            body,
            left,
            mut content,
            mut pad,
            first,
        } = self.state
        else {
            unreachable!("payload() runs in the payload state")
        };
        let mut used = 0usize;
        let mut left = left;
        if let Body::Padded { kind, flags } = body {
            if first {
                // Fields before the content: pad length (PADDED), priority (HEADERS with
                // PRIORITY), promised stream id (PUSH_PROMISE). A malformed frame whose fields
                // are longer than it is all framing.
                let mut prefix = 0u64;
                if flags & FLAG_PADDED != 0 && kind != CONTINUATION {
                    pad = u64::from(bytes[0]);
                    prefix += 1;
                }
                if kind == HEADERS && flags & FLAG_PRIORITY != 0 {
                    prefix += 5;
                }
                if kind == PUSH_PROMISE {
                    prefix += 4;
                }
                let prefix = prefix.min(left);
                pad = pad.min(left - prefix);
                content = left - prefix - pad;
            }
            // Bytes still to come: [prefix rest][content][pad]. Prefix = left - content - pad.
            let prefix_left = left - content - pad;
            let take = (prefix_left as usize).min(bytes.len());
            self.split.framing += take as u64;
            used += take;
            left -= take as u64;
            let take_c = (content as usize).min(bytes.len() - used);
            if kind == DATA {
                self.split.data += take_c as u64;
            } else {
                self.split.headers += take_c as u64;
                self.block += take_c as u64;
            }
            used += take_c;
            left -= take_c as u64;
            content -= take_c as u64;
            let take_p = ((left.min(pad)) as usize).min(bytes.len() - used);
            self.split.framing += take_p as u64;
            used += take_p;
            left -= take_p as u64;
            pad -= take_p as u64;
        } else if let Body::Whole(c) = body {
            let take = (left as usize).min(bytes.len());
            self.add(c, take as u64);
            used = take;
            left -= take as u64;
        }
        self.state = State::Payload {
            body,
            left,
            content,
            pad,
            first: false,
        };
        self.end_frame_if_empty();
        used
    }

    /// Moves to the next frame once this one's payload is all read.
    fn end_frame_if_empty(&mut self) {
        let State::Payload { body, left: 0, .. } = self.state else {
            return;
        };
        if let Body::Padded { kind, flags } = body {
            let ends_block = kind != DATA && flags & FLAG_END_HEADERS != 0;
            if ends_block {
                self.blocks.push(std::mem::take(&mut self.block));
            }
        }
        self.state = State::Header { have: 0 };
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

    /// A client's side of a short exchange, with the expected split.
    fn client_wire() -> (Vec<u8>, H2Split, Vec<u64>) {
        let mut w = PREFACE.to_vec();
        w.extend(frame(SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100])); // handshake 15
        w.extend(frame(0x8, 0, 0, &[0, 0, 0xff, 0xff])); // WINDOW_UPDATE: control 13
        w.extend(frame(SETTINGS, FLAG_ACK, 0, &[])); // first ACK: handshake 9
                                                     // HEADERS without END_HEADERS (20 B block), CONTINUATION with it (7 B).
        w.extend(frame(HEADERS, 0x1, 1, &[7; 20]));
        w.extend(frame(CONTINUATION, FLAG_END_HEADERS, 1, &[7; 7]));
        // Padded, prioritised HEADERS: pad length 1 + priority 5 + block 4 + padding 3.
        let mut p = vec![3u8, 0, 0, 0, 0, 16];
        p.extend_from_slice(&[9; 4]);
        p.extend_from_slice(&[0; 3]);
        w.extend(frame(
            HEADERS,
            FLAG_END_HEADERS | FLAG_PADDED | FLAG_PRIORITY,
            3,
            &p,
        ));
        w.extend(frame(SETTINGS, 0, 0, &[])); // a later SETTINGS: control 9
        w.extend(frame(0x6, 0, 0, &[1; 8])); // PING: control 17
        w.extend(frame(0x3, 0, 1, &[0, 0, 0, 8])); // RST_STREAM: control 13
        let want = H2Split {
            handshake: 24 + 15 + 9,
            headers: 20 + 7 + 4,
            framing: 9 * 3 + 1 + 5 + 3,
            data: 0,
            control: 13 + 9 + 17 + 13,
        };
        (w, want, vec![27, 4])
    }

    fn server_wire() -> (Vec<u8>, H2Split) {
        let mut w = frame(SETTINGS, 0, 0, &[0, 4, 0, 1, 0, 0]);
        w.extend(frame(SETTINGS, FLAG_ACK, 0, &[]));
        w.extend(frame(HEADERS, FLAG_END_HEADERS, 1, &[1; 12]));
        w.extend(frame(DATA, 0, 1, b"hello"));
        // Padded DATA: pad length 1 + "abc" + 4 padding.
        w.extend(frame(
            DATA,
            FLAG_PADDED | 0x1,
            1,
            &[4, b'a', b'b', b'c', 0, 0, 0, 0],
        ));
        w.extend(frame(DATA, 0x1, 3, b"")); // an empty DATA ending a stream
        w.extend(frame(0x7, 0, 0, &[0, 0, 0, 3, 0, 0, 0, 0])); // GOAWAY
        w.extend(frame(0xfa, 0, 0, b"xyz")); // an unknown type: control
        let want = H2Split {
            handshake: 15 + 9,
            headers: 12,
            framing: 9 * 4 + 1 + 4,
            data: 5 + 3,
            control: 17 + 12,
        };
        (w, want)
    }

    #[test]
    fn splits_every_frame_kind_in_any_pieces() {
        let (cw, cwant, blocks) = client_wire();
        let (sw, swant) = server_wire();
        for (sender, wire, want) in [(Sender::Client, &cw, cwant), (Sender::Server, &sw, swant)] {
            assert_eq!(
                want.total(),
                wire.len() as u64,
                "{sender:?}: the test adds up"
            );
            for piece in [1, 2, 3, 7, 9, 10, wire.len()] {
                let mut p = H2WireParser::new(sender);
                for chunk in wire.chunks(piece) {
                    p.push(chunk);
                }
                assert_eq!(p.split(), want, "{sender:?} in pieces of {piece}");
                assert_eq!(p.pending(), 0);
                if sender == Sender::Client {
                    assert_eq!(p.take_header_blocks(), blocks);
                } else {
                    assert_eq!(p.take_header_blocks(), vec![12]);
                }
            }
        }
    }

    #[test]
    fn an_incomplete_frame_is_pending_and_a_bad_preface_is_not_http2() {
        let (sw, _) = server_wire();
        let mut p = H2WireParser::new(Sender::Server);
        p.push(&sw[..20]); // SETTINGS (15) + 5 bytes of the ACK's header
        assert_eq!((p.split().total(), p.pending()), (15, 5));
        p.push(&sw[20..]);
        assert_eq!((p.split().total(), p.pending()), (sw.len() as u64, 0));

        let mut bad = H2WireParser::new(Sender::Client);
        bad.push(b"PRI * HT");
        bad.push(b"TP/1.1 200 OK\r\n");
        assert!(bad.is_broken());
        assert_eq!(bad.split().total() + bad.pending(), 23);
        assert_eq!(bad.split().total(), 0);
    }

    #[test]
    fn malformed_padding_cannot_underflow() {
        // PADDED DATA claiming 200 bytes of padding in a 3-byte payload.
        let w = frame(DATA, FLAG_PADDED, 1, &[200, 1, 2]);
        let mut p = H2WireParser::new(Sender::Server);
        p.push(&w);
        assert_eq!(p.split().total(), w.len() as u64);
        assert_eq!(p.split().data, 0);
    }
}
