//! The fan-out floor: one publish's message bytes written to N sockets by the simplest loop,
//! with no HTTP, no WebSocket library, no feed and no task per subscriber.
//!
//! ```text
//! per round: encode MESSAGE once (as the feed does per publish), then
//!            for socket in sockets { write(socket, MESSAGE) }   one write per socket
//!            wait until every reader has seen the round's seq (untimed on the bench thread)
//! ```
//!
//! Two kinds of socket, so each transport of `benches/fanout.rs` has a floor like itself:
//!
//! - [`FloorSocket::Mem`]: the very [`MemSocket`] the transports' fan-out writes into (its write
//!   scans for the seq, counts and drops the bytes), so at any N (10,000 included) the ratio
//!   transport / floor is what the server's stack adds over writing the bytes, kernel aside.
//! - [`FloorSocket::Tcp`]: N pairs of connected 127.0.0.1 TCP sockets (2 fds each, so up to
//!   a few thousand under the 20,000 open-files cap); the bench thread writes each with one
//!   blocking `write(2)`, and reader tasks on a thread of their own drain the other ends and
//!   count the seq. The bench thread's CPU then holds the writes and the kernel's loopback
//!   send, not the readers' `read(2)`s: what a server pays to put a message on N real sockets.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;

use pushlab_proto::encode_message;
use pushlab_server::feed::now_ns;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::fanout::{Inbox, MemSocket, Progress};
use crate::{data_of, TOPIC};

/// Which sockets the floor writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloorSocket {
    /// In-memory sockets, the same type as the transports' fan-out writes into.
    Mem,
    /// Connected TCP socket pairs on 127.0.0.1.
    Tcp,
}

impl FloorSocket {
    /// The name in the bench id (`fanout_floor_{name}_c{N}_{data}b`).
    pub fn as_str(self) -> &'static str {
        match self {
            FloorSocket::Mem => "mem",
            FloorSocket::Tcp => "tcp",
        }
    }
}

enum Writers {
    Mem(Vec<MemSocket>),
    Tcp {
        sockets: Vec<TcpStream>,
        readers: Option<JoinHandle<()>>,
    },
}

/// N sockets that one message at a time is written to, and what counts its arrival.
pub struct FloorRig {
    writers: Writers,
    progress: Arc<Progress>,
    data: String,
    seq: u64,
}

impl FloorRig {
    /// Opens `subscribers` sockets of `kind` for messages of `data_bytes` bytes of data.
    ///
    /// # Panics
    /// If a TCP socket cannot be opened (e.g. the open-files limit is under 2 x `subscribers`).
    pub fn new(kind: FloorSocket, subscribers: usize, data_bytes: usize) -> Self {
        let progress = Arc::new(Progress::default());
        let writers = match kind {
            FloorSocket::Mem => Writers::Mem(
                (0..subscribers)
                    .map(|_| MemSocket::new(Arc::new(Inbox::default()), progress.clone()))
                    .collect(),
            ),
            FloorSocket::Tcp => {
                let (sockets, readers) = tcp_pairs(subscribers, progress.clone(), b"");
                Writers::Tcp {
                    sockets,
                    readers: Some(readers),
                }
            }
        };
        FloorRig {
            writers,
            progress,
            data: data_of(data_bytes),
            seq: 0,
        }
    }

    /// Encodes one message and writes it once to every socket, then waits until every reader
    /// has it.
    pub async fn deliver(&mut self) {
        self.seq += 1;
        let (seq, progress) = (self.seq, &self.progress);
        let message = encode_message(TOPIC, seq, now_ns(), &self.data);
        match &mut self.writers {
            Writers::Mem(sockets) => {
                progress.arm(seq, sockets.len());
                for socket in sockets {
                    socket
                        .write_all(&message.bytes)
                        .await
                        .expect("in-memory write");
                }
            }
            Writers::Tcp { sockets, .. } => {
                progress.arm(seq, sockets.len());
                for socket in sockets {
                    socket.write_all(&message.bytes).expect("loopback write");
                }
            }
        }
        self.progress.wait("fanout floor").await;
    }
}

impl Drop for FloorRig {
    fn drop(&mut self) {
        if let Writers::Tcp { sockets, readers } = &mut self.writers {
            sockets.clear(); // the readers see EOF and end
            if let Some(readers) = readers.take() {
                let _ = readers.join();
            }
        }
    }
}

/// `n` connected loopback pairs: the accepted ends to write to, and a thread whose
/// current-thread runtime drains the connecting ends into `progress` until EOF. Each
/// connecting end first sends `open` (a subscriber's request; empty for the floor).
pub(crate) fn tcp_pairs(
    n: usize,
    progress: Arc<Progress>,
    open: &[u8],
) -> (Vec<TcpStream>, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    let mut sockets = Vec::with_capacity(n);
    let mut far_ends = Vec::with_capacity(n);
    for _ in 0..n {
        let mut far = TcpStream::connect(addr).expect("connect to 127.0.0.1");
        far.write_all(open).expect("the subscriber's request");
        let (near, _) = listener.accept().expect("accept");
        near.set_nodelay(true).expect("TCP_NODELAY");
        far.set_nonblocking(true).expect("nonblocking");
        sockets.push(near);
        far_ends.push(far);
    }
    let readers = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("reader runtime");
        rt.block_on(async move {
            let mut tasks = tokio::task::JoinSet::new();
            for far in far_ends {
                let progress = progress.clone();
                let mut far = tokio::net::TcpStream::from_std(far).expect("register reader");
                tasks.spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    while let Ok(n @ 1..) = far.read(&mut buf).await {
                        progress.on_write(&buf[..n]);
                    }
                });
            }
            while tasks.join_next().await.is_some() {}
        });
    });
    (sockets, readers)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every round reaches every subscriber over both kinds of socket, and each socket carries
    /// exactly one message's bytes per round.
    #[test]
    fn a_round_reaches_every_socket_once() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        for kind in [FloorSocket::Mem, FloorSocket::Tcp] {
            let mut rig = FloorRig::new(kind, 50, 64);
            rt.block_on(async {
                rig.deliver().await;
                rig.deliver().await;
            });
            let one = encode_message(TOPIC, 1, now_ns(), &data_of(64)).bytes.len() as u64;
            // ts digits can differ by a byte at most between messages: compare loosely.
            let written = rig.progress.written_bytes();
            assert!(
                written.abs_diff(2 * 50 * one) <= 2 * 50,
                "{kind:?}: {written} bytes"
            );
        }
    }
}
