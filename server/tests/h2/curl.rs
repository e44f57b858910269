//! curl against the server: `--http2-prior-knowledge` on the cleartext port, `-k --http2`
//! over TLS (and `--pinnedpubkey` with the SPKI hash the server prints). Skipped, with the
//! reason printed, when curl is not installed (CI has it).
