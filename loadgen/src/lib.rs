//! pushlab-loadgen: see issue 3 (work in progress).

// Results: report, compare and sweep (issue 4).
pub mod report;
