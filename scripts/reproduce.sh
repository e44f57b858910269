#!/usr/bin/env bash
# Regenerates the committed results/ from nothing (about 15 minutes on a 2-core machine, 26 as root):
#   1. builds the loadgen (release);
#   2. `compare` -> results/latest/   (every transport + variants, JSON, charts, REPORT.md);
#   3. `sweep`   -> results/sweep/    (scripts/sweep.toml: rate, headers, keep-alive, size, scale);
#   4. `sweep`   -> results/link/     (scripts/sweep-link.toml: every transport through the emulated
#      link at RTT 0-200 ms and loss 0-5 %, about 11 minutes), then its own report there; the link
#      makes network namespaces, so this step needs root and is skipped, saying so, without it;
#   5. `report`  over results/ -> results/REPORT.md, results/CLAIMS.md, results/charts/;
#   6. results/SETUP.md: machine, versions, commit, commands, dates;
#   7. README.md: the claims table between its `claims:start` / `claims:end` markers.
#
#   scripts/reproduce.sh            # from nothing
#   scripts/reproduce.sh --resume   # keep finished sweep points (an interrupted run goes on)
#
# Only loopback traffic, and the link's own namespaces (made and removed by each point); every run
# is bounded in clients and time. results/bench.md and results/RELIABILITY.md belong to other
# scripts and are left alone.
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

echo "== link sweep"
link_s=0
if [ "$(id -u)" -eq 0 ]; then
  if [ "$resume" -eq 0 ]; then rm -rf "$OUT/link"; fi
  t=$(date +%s)
  "$BIN" sweep --spec scripts/sweep-link.toml --out "$OUT/link"
  "$BIN" report "$OUT/link" --out "$OUT/link"
  link_s=$(( $(date +%s) - t ))
  link_step="$BIN sweep --spec scripts/sweep-link.toml --out $OUT/link   # ${link_s} s
$BIN report $OUT/link --out $OUT/link"
else
  echo "skipped: the link sweep needs root (it makes network namespaces); $OUT/link is left as it was"
  link_step="# skipped (not root): $OUT/link was left as it was"
fi

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
| finished | $finished ($(( $(date +%s) - t0 )) s; compare ${compare_s} s, sweep ${sweep_s} s, link sweep ${link_s} s) |
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
$link_step
$BIN report $OUT --out $OUT
\`\`\`

- \`latest/\`: the one-command comparison (JSON per run, charts, REPORT.md over that run only).
- \`sweep/\`: one JSON per point of \`scripts/sweep.toml\`.
- \`link/\`: one JSON per point of \`scripts/sweep-link.toml\` (through the emulated link; root
  only), with its own REPORT.md and charts.
- \`REPORT.md\`, \`CLAIMS.md\`, \`charts/\`: the report over both.

Server and loadgen share this machine (the server is a child process, so its CPU and memory
figures are its own); traffic is on loopback, so latency has no network in it, except in
\`link/\`, where it crosses the emulated link between two network namespaces.
EOF

echo "== README claims table"
. scripts/lib/claims.sh
splice_claims "$OUT/CLAIMS.md"

echo "== done in $(( $(date +%s) - t0 )) s: $OUT/REPORT.md"
