//! The client side of one connection, counted as the loadgen counts: TCP bytes (`wire`) and,
//! above TLS, HTTP's bytes (`plaintext`; equal to `wire` in cleartext).
//!
//! [`Link::close`] takes the socket from under the HTTP client, closes it (TLS close_notify,
//! then FIN) and reads until the server's end, so every byte the server wrote was read and
//! counted here: the server's counters and these must agree to the byte.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use pushlab_proto::{ByteCounter, CountingIo};
use pushlab_server::testing::TestServer;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

/// A guard against hangs, never a performance claim.
pub const HANG_GUARD: Duration = Duration::from_secs(30);

/// How a client reaches the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// HTTP/2 in cleartext with prior knowledge.
    H2c,
    /// HTTP/2 over TLS (ALPN h2).
    H2Tls,
    /// HTTP/1.1 over TLS (ALPN http/1.1).
    H1Tls,
}

impl Mode {
    pub fn scheme(self) -> &'static str {
        match self {
            Mode::H2c => "http",
            _ => "https",
        }
    }
}

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
pub type BoxIo = Box<dyn Io>;

type Slot = Arc<Mutex<Option<BoxIo>>>;

/// The socket as the HTTP client sees it; once [`Link::close`] has taken it, reads give EOF
/// and writes fail.
pub struct Detachable(Slot);

/// One connection's counters and its close.
pub struct Link {
    pub wire: Arc<ByteCounter>,
    pub plaintext: Arc<ByteCounter>,
    /// What ALPN agreed on (TLS only).
    pub alpn: Option<Vec<u8>>,
    slot: Slot,
}

/// Connects to `server` as `mode` says.
pub async fn open(server: &TestServer, mode: Mode) -> (Link, Detachable) {
    let tcp = TcpStream::connect(server.addr).await.expect("connect");
    tcp.set_nodelay(true).unwrap();
    let wire = Arc::new(ByteCounter::default());
    let plaintext = Arc::new(ByteCounter::default());
    let counted = CountingIo::new(tcp, wire.clone());
    let (io, alpn): (BoxIo, _) = match mode {
        Mode::H2c => (Box::new(CountingIo::new(counted, plaintext.clone())), None),
        Mode::H2Tls | Mode::H1Tls => {
            let offer: &[u8] = if mode == Mode::H2Tls {
                b"h2"
            } else {
                b"http/1.1"
            };
            let connector = tokio_rustls::TlsConnector::from(server.tls_client_config(&[offer]));
            let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            let tls = connector
                .connect(name, counted)
                .await
                .expect("TLS handshake");
            let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
            (Box::new(CountingIo::new(tls, plaintext.clone())), alpn)
        }
    };
    let slot: Slot = Arc::new(Mutex::new(Some(io)));
    let link = Link {
        wire,
        plaintext,
        alpn,
        slot: slot.clone(),
    };
    (link, Detachable(slot))
}

impl Link {
    /// Takes the socket from the HTTP client, closes it and reads until the server's end.
    pub async fn close(&self) {
        let io = self.slot.lock().unwrap().take();
        let Some(mut io) = io else { return };
        let drain = async {
            let _ = io.shutdown().await;
            let mut sink = Vec::new();
            let _ = io.read_to_end(&mut sink).await;
        };
        tokio::time::timeout(HANG_GUARD, drain)
            .await
            .expect("the server ended the connection");
    }
}

impl AsyncRead for Detachable {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.0.lock().unwrap().as_mut() {
            Some(io) => Pin::new(io).poll_read(cx, buf),
            None => Poll::Ready(Ok(())),
        }
    }
}

impl AsyncWrite for Detachable {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.0.lock().unwrap().as_mut() {
            Some(io) => Pin::new(io).poll_write(cx, buf),
            None => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.0.lock().unwrap().as_mut() {
            Some(io) => Pin::new(io).poll_flush(cx),
            None => Poll::Ready(Ok(())),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.0.lock().unwrap().as_mut() {
            Some(io) => Pin::new(io).poll_shutdown(cx),
            None => Poll::Ready(Ok(())),
        }
    }
}
