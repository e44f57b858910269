//! pushlab-loadgen: see issue 3 (work in progress).
