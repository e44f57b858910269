//! Counts every byte a socket moves, both ways, from the first byte to the close.
//!
//! The server and the loadgen both wrap their sockets in [`CountingIo`]; the lab's bandwidth
//! figures are these counts, and the two sides must agree to the byte. The counter is a trait
//! so the server can attribute a connection's bytes to a transport once it has routed the
//! first request, while the loadgen simply sums per client. A counter is handed the bytes
//! themselves, so one that parses them as they pass (the loadgen's HTTP/2 frame splitter) is
//! a counter like any other.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Receives the bytes a socket moved as they move (a counter that only counts reads
/// `bytes.len()`).
pub trait IoCounter: Send + Sync {
    /// `bytes` were just read, in order.
    fn on_read(&self, bytes: &[u8]);
    /// `bytes` were just written, in order.
    fn on_written(&self, bytes: &[u8]);
}

/// A plain pair of counters.
#[derive(Debug, Default)]
pub struct ByteCounter {
    pub read: AtomicU64,
    pub written: AtomicU64,
}

impl ByteCounter {
    pub fn read(&self) -> u64 {
        self.read.load(Ordering::Relaxed)
    }
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }
}

impl IoCounter for ByteCounter {
    fn on_read(&self, bytes: &[u8]) {
        self.read.fetch_add(bytes.len() as u64, Ordering::Relaxed);
    }
    fn on_written(&self, bytes: &[u8]) {
        self.written
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
    }
}

impl<C: IoCounter + ?Sized> IoCounter for Arc<C> {
    fn on_read(&self, bytes: &[u8]) {
        (**self).on_read(bytes)
    }
    fn on_written(&self, bytes: &[u8]) {
        (**self).on_written(bytes)
    }
}

/// An I/O object that reports every byte read from and written to `inner`.
#[derive(Debug)]
pub struct CountingIo<T, C> {
    inner: T,
    counter: C,
}

impl<T, C> CountingIo<T, C> {
    pub fn new(inner: T, counter: C) -> Self {
        CountingIo { inner, counter }
    }
    pub fn get_ref(&self) -> &T {
        &self.inner
    }
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.inner
    }
    pub fn counter(&self) -> &C {
        &self.counter
    }
    pub fn into_inner(self) -> T {
        self.inner
    }
}

impl<T: AsyncRead + Unpin, C: IoCounter + Unpin> AsyncRead for CountingIo<T, C> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let res = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.counter.on_read(&buf.filled()[before..]);
        }
        res
    }
}

impl<T: AsyncWrite + Unpin, C: IoCounter + Unpin> AsyncWrite for CountingIo<T, C> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = res {
            this.counter.on_written(&buf[..n]);
        }
        res
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let res = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(mut n)) = res {
            // The first `n` bytes across the slices went out, in order.
            for b in bufs {
                if n == 0 {
                    break;
                }
                let take = n.min(b.len());
                this.counter.on_written(&b[..take]);
                n -= take;
            }
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn counts_both_ways() {
        let (a, mut b) = tokio::io::duplex(64);
        let counter = Arc::new(ByteCounter::default());
        let mut io = CountingIo::new(a, counter.clone());
        io.write_all(b"hello").await.unwrap();
        b.write_all(b"abc").await.unwrap();
        let mut buf = [0u8; 3];
        io.read_exact(&mut buf).await.unwrap();
        let mut got = [0u8; 5];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(counter.written(), 5);
        assert_eq!(counter.read(), 3);
    }

    /// A counter that keeps the bytes: it sees exactly what moved, in order, vectored
    /// writes included.
    #[tokio::test]
    async fn a_counter_is_handed_the_bytes_that_moved() {
        #[derive(Default)]
        struct Keep(std::sync::Mutex<(Vec<u8>, Vec<u8>)>);
        impl IoCounter for Keep {
            fn on_read(&self, bytes: &[u8]) {
                self.0.lock().unwrap().0.extend_from_slice(bytes);
            }
            fn on_written(&self, bytes: &[u8]) {
                self.0.lock().unwrap().1.extend_from_slice(bytes);
            }
        }
        let (a, mut b) = tokio::io::duplex(64);
        let keep = Arc::new(Keep::default());
        let mut io = CountingIo::new(a, keep.clone());
        let bufs = [io::IoSlice::new(b"ab"), io::IoSlice::new(b"cde")];
        let n = io.write_vectored(&bufs).await.unwrap();
        io.write_all(b"f").await.unwrap();
        b.write_all(b"xyz").await.unwrap();
        let mut got = [0u8; 3];
        io.read_exact(&mut got).await.unwrap();
        let (read, written) = keep.0.lock().unwrap().clone();
        assert_eq!(read, b"xyz");
        let mut want = b"abcde"[..n].to_vec();
        want.extend_from_slice(b"f");
        assert_eq!(written, want);
    }
}
