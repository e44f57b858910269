//! Renderers: they format figures and verdicts, and read no result file or socket.
//!
//! - [`markdown`]: the comparison table, the claims table and REPORT.md;
//! - [`charts`]: the six charts (PNG and SVG) on one shared chart helper, and the link charts;
//! - [`link`]: REPORT.md's section on runs through the emulated link;
//! - [`protocols`]: REPORT.md's section on HTTP/1.1, h2c and h2 over TLS side by side.

pub mod charts;
pub mod link;
pub mod markdown;
pub mod protocols;
