//! Integration tests of pushlab-server with real clients over sockets on 127.0.0.1:0.
//!
//! One binary (one link, one process) holding every behaviour; each behaviour is one function
//! run on all five transports (`per_transport!` makes one `#[tokio::test]` per transport).
//!
//! - [`delivery`]: 1,000 messages reach 50 concurrent subscribers complete, in order, once.
//! - [`resume`]: a cut connection resumes with no gap and no duplicate.
//! - [`gap`]: a subscriber left behind the ring gets the gap notice with the right count.
//! - [`bad_input`]: every bad input gets its status and JSON error; the server stays up.
//! - [`byte_counts`]: /metrics byte counters equal what the client counted on its socket.
//! - [`shutdown`]: shutdown ends every transport cleanly and in time.
//! - [`wire`]: long-poll timeout, the 2-byte WebSocket header, byte-identical MESSAGEs.
//! - [`flags`]: a bad flag value stops the binary with exit code 2, naming the flag; a replica
//!   that cannot reach its Redis exits 1 with one line.
//! - [`replicas`]: two replicas on a Redis backplane: cross-replica delivery, resume on the
//!   other replica, a Redis restart without loss or duplicate.

mod client;
mod common;

mod bad_input;
mod byte_counts;
mod delivery;
mod flags;
mod gap;
mod replicas;
mod resume;
mod shutdown;
mod wire;
