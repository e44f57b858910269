//! Helpers shared by the criterion benches in `benches/` (`cargo bench`).
