#!/usr/bin/env bash
# Regenerates every report from the result files already in results/ (no measurement):
# results/REPORT.md (+ CLAIMS.md, charts/), results/latest/REPORT.md, and README.md's claims
# table, with the debug loadgen (a report measures nothing, so the quick build serves). Run
# after any change to the report's code or to results/;
# the golden test (cargo test -p pushlab-loadgen --test report_golden) then checks them.
#   scripts/reports.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/claims.sh
cargo build -p pushlab-loadgen
BIN=${CARGO_TARGET_DIR:-target}/debug/pushlab-loadgen
"$BIN" report results --out results
if [ -d results/latest ]; then "$BIN" report results/latest --out results/latest; fi
splice_claims results/CLAIMS.md
echo "reports regenerated; now: cargo test -p pushlab-loadgen --test report_golden"
