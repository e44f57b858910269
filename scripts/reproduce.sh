#!/usr/bin/env bash
# Regenerates the committed results/ from nothing (about 15 minutes on a 2-core machine):
#   1. builds the loadgen (release);
#   2. `compare` -> results/latest/   (every transport + variants, JSON, charts, REPORT.md);
#   3. `sweep`   -> results/sweep/    (scripts/sweep.toml: rate, headers, keep-alive, size, scale);
#   4. `report`  over results/ -> results/REPORT.md, results/CLAIMS.md, results/charts/;
#   5. results/SETUP.md: machine, versions, commit, commands, dates;
#   6. README.md: the claims table between its `claims:start` / `claims:end` markers.
#
#   scripts/reproduce.sh            # from nothing
#   scripts/reproduce.sh --resume   # keep finished sweep points (an interrupted run goes on)
#
# Only loopback traffic; every run is bounded in clients and time. results/bench.md and
# results/RELIABILITY.md belong to other scripts and are left alone.
set -euo pipefail
cd "$(dirname "$0")/.."

resume=0
resume_flag=""
for arg in "$@"; do
  case "$arg" in
    --resume) resume=1; resume_flag=" --resume" ;;
    *) echo "usage: scripts/reproduce.sh [--resume]" >&2; exit 2 ;;
  esac
done

OUT=results
BIN=target/release/pushlab-loadgen
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
t0=$(date +%s)

echo "== build"
cargo build --release -p pushlab-loadgen

echo "== clean"
rm -rf "$OUT/latest" "$OUT/charts" "$OUT/REPORT.md" "$OUT/CLAIMS.md" "$OUT/SETUP.md"
if [ "$resume" -eq 0 ]; then rm -rf "$OUT/sweep"; fi
mkdir -p "$OUT"

echo "== compare"
t=$(date +%s)
"$BIN" compare --out "$OUT/latest"
compare_s=$(( $(date +%s) - t ))

echo "== sweep"
t=$(date +%s)
"$BIN" sweep --spec scripts/sweep.toml --out "$OUT/sweep"
sweep_s=$(( $(date +%s) - t ))

echo "== report"
"$BIN" report "$OUT" --out "$OUT"

finished=$(date -u +%Y-%m-%dT%H:%M:%SZ)
. scripts/lib/provenance.sh
provenance

cat > "$OUT/SETUP.md" <<EOF
# How results/ was made

| | |
|---|---|
| command | \`scripts/reproduce.sh${resume_flag}\` |
| started | $started |
| finished | $finished ($(( $(date +%s) - t0 )) s; compare ${compare_s} s, sweep ${sweep_s} s) |
| commit | $commit |
| machine | ${cpu:-unknown}, $(nproc) cores, ${mem_gib} GiB |
| kernel | $(uname -srm) |
| os | $os |
| rustc | $(rustc -V) |
| cargo | $(cargo -V) |
| open files | soft $(ulimit -Sn), hard $(ulimit -Hn) |

Steps (each regenerates its directory from nothing):

\`\`\`sh
cargo build --release -p pushlab-loadgen
$BIN compare --out $OUT/latest                              # ${compare_s} s
$BIN sweep --spec scripts/sweep.toml --out $OUT/sweep       # ${sweep_s} s
$BIN report $OUT --out $OUT
\`\`\`

- \`latest/\`: the one-command comparison (JSON per run, charts, REPORT.md over that run only).
- \`sweep/\`: one JSON per point of \`scripts/sweep.toml\`.
- \`REPORT.md\`, \`CLAIMS.md\`, \`charts/\`: the report over both.

Server and loadgen share this machine (the server is a child process, so its CPU and memory
figures are its own); all traffic is on loopback, so latency has no network in it.
EOF

echo "== README claims table"
. scripts/lib/claims.sh
splice_claims "$OUT/CLAIMS.md"

echo "== done in $(( $(date +%s) - t0 )) s: $OUT/REPORT.md"
