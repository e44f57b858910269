//! WebSocket over HTTP/2 (RFC 8441): an extended CONNECT opens a stream that then carries
//! the WebSocket's bytes in DATA frames both ways; tokio-tungstenite runs on it as on a
//! socket ([`Tunnel`]).
//!
//! ```text
//! SETTINGS_ENABLE_CONNECT_PROTOCOL = 1          (the server's SETTINGS, RFC 8441 §3)
//! HEADERS :method CONNECT :protocol websocket   HEADERS :status 200     (not 101: §5)
//!         :scheme http :path /ws/T?since=41 :authority ...
//!         sec-websocket-version: 13             (no Sec-WebSocket-Key / -Accept: §5)
//! DATA 88 80 xx xx xx xx                        DATA 81 4c {"topic":"T","seq":42,...}
//! ```
//!
//! The tunnel's bytes (the WebSocket frames) are the subscriber's, counted by a
//! [`super::Credit`] and split by the WebSocket client as on HTTP/1.1; the HEADERS and DATA
//! frame headers around them are the connection's.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use h2::{RecvStream, SendStream};
use pushlab_proto::CountingIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{h2_error, Credit, Lease};
use crate::client::{ClientCtx, SubscribeRequest};
use crate::http::ClientError;

/// How long a new connection may take to deliver the server's SETTINGS.
const SETTINGS_TIMEOUT: Duration = Duration::from_secs(10);

/// An extended-CONNECT stream as a byte stream; flow-control capacity is released as the
/// bytes are read, so the server can keep sending.
#[derive(Debug)]
pub struct Tunnel {
    send: SendStream<Bytes>,
    recv: RecvStream,
    /// Received and not read yet.
    pending: Bytes,
}

/// Opens a WebSocket stream on `lease`'s connection (RFC 8441 §4) and counts its bytes as
/// the subscriber's. Errors: a server that does not enable extended CONNECT, a status other
/// than 200 ([`ClientError::Status`]), a reset.
pub async fn open(
    cx: &ClientCtx,
    lease: &mut Lease,
    req: &SubscribeRequest,
) -> Result<CountingIo<Tunnel, Credit>, ClientError> {
    // RFC 8441 §3: `:protocol` only once the server's SETTINGS said it may be used.
    if !lease.send.is_extended_connect_protocol_enabled()
        && (!lease.split.settings_acknowledged(SETTINGS_TIMEOUT).await
            || !lease.send.is_extended_connect_protocol_enabled())
    {
        return Err(ClientError::Protocol(
            "the server did not enable extended CONNECT (SETTINGS_ENABLE_CONNECT_PROTOCOL, RFC 8441 §3): no WebSocket over HTTP/2".into(),
        ));
    }
    let mut request = super::request(cx, req, http::Method::CONNECT)?;
    request
        .extensions_mut()
        .insert(h2::ext::Protocol::from_static("websocket"));
    let (resp, send) = lease.send.send_request(request, false).map_err(h2_error)?;
    let resp = resp.await.map_err(h2_error)?;
    if resp.status() != http::StatusCode::OK {
        // Its body, if any, reaches no stream: the connection's framing.
        return Err(ClientError::Status {
            status: resp.status().as_u16(),
            body: String::new(),
        });
    }
    let tunnel = Tunnel {
        send,
        recv: resp.into_body(),
        pending: Bytes::new(),
    };
    Ok(CountingIo::new(tunnel, lease.credit(cx)))
}

fn to_io(e: h2::Error) -> io::Error {
    match e.into_io() {
        Some(e) => e,
        None => io::Error::new(io::ErrorKind::ConnectionReset, "HTTP/2 stream reset"),
    }
}

impl AsyncRead for Tunnel {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pending.is_empty() {
            match this.recv.poll_data(cx) {
                Poll::Ready(Some(Ok(data))) => {
                    let _ = this.recv.flow_control().release_capacity(data.len());
                    this.pending = data;
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(to_io(e))),
                // END_STREAM: EOF.
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
        let n = this.pending.len().min(buf.remaining());
        buf.put_slice(&this.pending[..n]);
        this.pending.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Tunnel {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        this.send.reserve_capacity(buf.len());
        match this.send.poll_capacity(cx) {
            Poll::Ready(Some(Ok(n))) => {
                let n = n.min(buf.len());
                this.send
                    .send_data(Bytes::copy_from_slice(&buf[..n]), false)
                    .map_err(to_io)?;
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Err(to_io(e))),
            Poll::Ready(None) => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
            Poll::Pending => Poll::Pending,
        }
    }

    /// The connection's task writes what the stream queued.
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// END_STREAM: the half-close of RFC 8441 §4 ("orderly TCP close").
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        let _ = self.get_mut().send.send_data(Bytes::new(), true);
        Poll::Ready(Ok(()))
    }
}
