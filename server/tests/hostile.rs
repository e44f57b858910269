//! Hostile input, faults and abuse, over real sockets on 127.0.0.1:0: the server answers
//! every bad input clearly, cuts slow and silent clients, holds its bounds, keeps no state for
//! connections that are gone, and loses no message.
//!
//! Every probe is also written as a JSON line to `$PUSHLAB_HOSTILE_LOG` when that is set
//! (`scripts/reliability.sh` turns the lines into `results/RELIABILITY.md`):
//!
//! ```text
//! {"class":"auth","attack":"POST /publish without token","answer":"401 publishing needs ..."}
//! ```

#[path = "hostile/fixture.rs"]
mod fixture;
#[path = "hostile/props.rs"]
mod props;
#[path = "hostile/raw.rs"]
mod raw;

#[path = "hostile/bounds.rs"]
mod bounds;
#[path = "hostile/conformance.rs"]
mod conformance;
#[path = "hostile/faults.rs"]
mod faults;
#[path = "hostile/fuzz_smoke.rs"]
mod fuzz_smoke;
#[path = "hostile/soak.rs"]
mod soak;
