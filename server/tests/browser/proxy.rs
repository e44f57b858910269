//! A byte-for-byte TCP relay in front of the server that keeps every HTTP request head it sees,
//! exactly as the client wrote it (order, case, values): how the test learns which headers
//! Chromium really sends on each transport.
//!
//! ```text
//! chromium ──► relay (127.0.0.1:P, keeps request heads) ──► pushlab-server (127.0.0.1:S)
//! ```
//!
//! Requests on one keep-alive connection are found by skipping `content-length` bodies; after
//! an `Upgrade` (WebSocket) or a chunked request body the relay only copies.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Request heads (request line through the blank line), in arrival order.
pub type Heads = Arc<Mutex<Vec<Vec<u8>>>>;

/// Starts the relay; returns its address and the heads it keeps.
pub async fn start(upstream: SocketAddr) -> std::io::Result<(SocketAddr, Heads)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let heads: Heads = Arc::default();
    let log = heads.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(relay(client, upstream, log.clone()));
        }
    });
    Ok((addr, heads))
}

async fn relay(client: TcpStream, upstream: SocketAddr, heads: Heads) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_rd, mut client_wr) = client.into_split();
    let (mut server_rd, mut server_wr) = server.into_split();
    let down = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut server_rd, &mut client_wr).await;
        let _ = client_wr.shutdown().await;
    });
    let mut scanner = HeadScanner::default();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match client_rd.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for head in scanner.push(&buf[..n]) {
            heads.lock().expect("heads lock").push(head);
        }
        if server_wr.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = server_wr.shutdown().await;
    let _ = down.await;
}

/// Finds request heads in the client's byte stream.
#[derive(Default)]
struct HeadScanner {
    pending: Vec<u8>,
    body_left: usize,
    copy_only: bool,
}

impl HeadScanner {
    fn push(&mut self, bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut found = Vec::new();
        let mut input = bytes.to_vec();
        loop {
            if self.copy_only || input.is_empty() {
                return found;
            }
            if self.body_left > 0 {
                let k = self.body_left.min(input.len());
                self.body_left -= k;
                input.drain(..k);
                continue;
            }
            self.pending.append(&mut input);
            let Some(end) = find(&self.pending, b"\r\n\r\n") else {
                if self.pending.len() > 64 * 1024 {
                    self.copy_only = true; // not HTTP as we know it
                }
                return found;
            };
            let rest = self.pending.split_off(end + 4);
            let head = std::mem::take(&mut self.pending);
            for (name, value) in header_pairs(&head) {
                let name = name.to_ascii_lowercase();
                if name == "content-length" {
                    self.body_left = value.trim().parse().unwrap_or(0);
                } else if name == "upgrade" || name == "transfer-encoding" {
                    self.copy_only = true;
                }
            }
            found.push(head);
            input = rest;
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The request line of a head.
pub fn request_line(head: &[u8]) -> String {
    let text = String::from_utf8_lossy(head);
    text.split("\r\n").next().unwrap_or_default().to_owned()
}

/// The headers of a head, in order, names and values as sent (the value without the
/// whitespace after the colon).
pub fn header_pairs(head: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(head);
    text.split("\r\n")
        .skip(1)
        .filter(|l| !l.is_empty())
        .filter_map(|l| {
            let (name, value) = l.split_once(':')?;
            Some((name.to_owned(), value.trim_start().to_owned()))
        })
        .collect()
}

#[test]
fn scanner_finds_heads_across_reads_and_skips_bodies() {
    let mut s = HeadScanner::default();
    let a = b"POST /publish/t HTTP/1.1\r\nContent-Length: 5\r\n\r\nhel";
    let b = b"loGET /x HTTP/1.1\r\nHost: h\r\n";
    let c = b"\r\nGET /ws/t HTTP/1.1\r\nUpgrade: websocket\r\n\r\n\x81\x85GET / HTTP/1.1\r\n\r\n";
    let mut heads = s.push(a);
    heads.extend(s.push(b));
    heads.extend(s.push(c));
    let lines: Vec<String> = heads.iter().map(|h| request_line(h)).collect();
    assert_eq!(
        lines,
        [
            "POST /publish/t HTTP/1.1",
            "GET /x HTTP/1.1",
            "GET /ws/t HTTP/1.1"
        ]
    );
    assert_eq!(
        header_pairs(&heads[1]),
        [("Host".to_owned(), "h".to_owned())]
    );
}
