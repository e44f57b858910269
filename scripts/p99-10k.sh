#!/usr/bin/env bash
# Issue 14's latency goal: p99 publish-to-deliver at 10,000 WebSocket and 10,000 SSE
# subscribers, 2 msg/s, with the loadgen on the same machine. Starts target/release/pushlab-server
# on a free 127.0.0.1 port, runs
#   pushlab-loadgen run --transports ws,sse --clients 10000 --rate 2 --duration 10s --warmup 3s
#     --source-ips 127.0.0.2-127.0.0.9
# against it (each transport a phase of its own, one after the other), and writes
# OUT_DIR/run.json (the loadgen's result: machine, versions, notes) and OUT_DIR/run.md (its
# table, headed by the command). Loopback only; bounded by the run's own duration and drain.
#
#   scripts/p99-10k.sh [OUT_DIR]        (default results/fanout-10k)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/results/fanout-10k}
mkdir -p "$out"
cd "$root"
cargo build --release -q -p pushlab-loadgen -p pushlab-server
bin=$root/target/release

# shellcheck source=lib/ports.sh
. "$root/scripts/lib/ports.sh"
port=$(free_port)

"$bin/pushlab-server" --bind "127.0.0.1:$port" --tick-rate 0 --max-connections 30000 >/dev/null 2>&1 &
server=$!
trap 'kill -TERM "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT
wait_port "$port"

args=(run --target "http://127.0.0.1:$port" --transports ws,sse --clients 10000 --rate 2
  --duration 10s --warmup 3s --source-ips 127.0.0.2-127.0.0.9)
{
  echo "# p99 publish-to-deliver at 10,000 subscribers, 2 msg/s"
  echo
  echo "Written by \`scripts/p99-10k.sh\` ($(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD)): \`pushlab-server --tick-rate 0 --max-connections 30000\` and \`pushlab-loadgen ${args[*]/http:\/\/127.0.0.1:$port/http://127.0.0.1:PORT}\` on this machine ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores). Goal (issue 14): p99 at most 100 ms."
  echo
  "$bin/pushlab-loadgen" "${args[@]}" --out "$out/run.json"
} > "$out/run.md"
cat "$out/run.md"
