#!/usr/bin/env bash
# Memory per idle subscriber connection of pushlab-server (issue 14's memory goal: at most
# 10 KiB of heap per idle SSE, chunked stream and WebSocket connection at 10,000 connections),
# measured by scripts/idle-memory.py on a fresh server per transport, twice:
#   - the server as built (target/release/pushlab-server);
#   - the same source with hyper's two HTTP/1 buffers starting at 1 KiB instead of 8 KiB
#     (scripts/hyper-small-buffers.patch, applied to a copy of hyper in a temp dir and built
#     there from `git archive HEAD`; the project's own build and Cargo.lock are never touched).
# Writes results/MEMORY.md (machine, versions, commit and command named) and prints each
# probe's JSON line.
#
#   scripts/memory.sh [--clients N] [--no-patched]
#
# Loopback only; each probe is bounded (idle-memory.py: 300 s) and each server is stopped
# after its probe. Needs root for the kernel slab column (/proc/slabinfo); without it that
# column is empty.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
clients=10000
patched=1
while [ $# -gt 0 ]; do
  case "$1" in
    --clients) clients=$2; shift 2 ;;
    --no-patched) patched=0; shift ;;
    *) echo "usage: scripts/memory.sh [--clients N] [--no-patched]" >&2; exit 2 ;;
  esac
done
command_line="scripts/memory.sh --clients $clients$([ $patched = 1 ] || echo ' --no-patched')"
started=$(date +%s)

echo "== build" >&2
cargo build --release -q -p pushlab-server
builds=("as built:$root/target/release/pushlab-server")

tmp=$(mktemp -d /tmp/pushlab-memory.XXXXXX)
server=""
cleanup() {
  if [ -n "$server" ]; then kill -TERM "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

hyper_version=$(awk '/^name = "hyper"$/ {getline; gsub(/[^0-9.]/, ""); print; exit}' Cargo.lock)
if [ "$patched" = 1 ]; then
  echo "== build with hyper $hyper_version's HTTP/1 buffers at 1 KiB (in $tmp; a few minutes)" >&2
  hyper_src=$(cargo metadata --format-version 1 --locked 2>/dev/null | python3 -c '
import json, os, sys
meta = json.load(sys.stdin)
print(next(os.path.dirname(p["manifest_path"]) for p in meta["packages"]
           if p["name"] == "hyper" and p["source"] and "registry" in p["source"]))')
  cp -r "$hyper_src" "$tmp/hyper"
  (cd "$tmp/hyper" && patch -s -p1 < "$root/scripts/hyper-small-buffers.patch")
  mkdir -p "$tmp/src"
  git archive HEAD | tar -x -C "$tmp/src"
  (cd "$tmp/src" && CARGO_TARGET_DIR="$tmp/target" cargo build --release -q -p pushlab-server \
    --config "patch.crates-io.hyper.path=\"$tmp/hyper\"")
  builds+=("hyper buffers at 1 KiB:$tmp/target/release/pushlab-server")
fi

# shellcheck source=lib/ports.sh
. "$root/scripts/lib/ports.sh"

results=()
for build in "${builds[@]}"; do
  label=${build%%:*}
  bin=${build#*:}
  for t in sse stream ws; do
    port=$(free_port)
    "$bin" --bind "127.0.0.1:$port" --tick-rate 0 --max-connections $((clients + 100)) \
      --max-connections-per-ip $((clients + 100)) >/dev/null 2>&1 &
    server=$!
    wait_port "$port"
    echo "== $label: $t, $clients idle connections" >&2
    line=$(python3 "$root/scripts/idle-memory.py" --port "$port" --transport "$t" --clients "$clients")
    echo "$line"
    results+=("$label|$line")
    kill -TERM "$server"; wait "$server" 2>/dev/null || true
    server=""
  done
done

. "$root/scripts/lib/provenance.sh"
provenance
rustc_v=$(rustc --version)
tungstenite_version=$(awk '/^name = "tungstenite"$/ {getline; gsub(/[^0-9.]/, ""); print; exit}' Cargo.lock)
mimalloc_version=$(awk '/^name = "mimalloc"$/ {getline; gsub(/[^0-9.]/, ""); print; exit}' Cargo.lock)
{
  echo "# Memory per idle subscriber connection"
  echo
  echo "Written by \`$command_line\` ($(date -u '+%Y-%m-%d %H:%M UTC'), $(( $(date +%s) - started )) s)."
  echo "Machine: $cpu, $(nproc) cores, $mem_gib GiB, $(uname -sr), $os. Commit $commit;"
  echo "$rustc_v; hyper $hyper_version, tungstenite $tungstenite_version, mimalloc $mimalloc_version."
  echo
  echo "Each row: a fresh \`pushlab-server --tick-rate 0\`, $clients connections of one transport"
  echo "from 127.0.0.1 (scripts/idle-memory.py: each checked for its 200 or 101 and response"
  echo "head, then left idle, no message on their topic). Heap = growth of the server's"
  echo "\`pushlab_heap_bytes\` (its counting allocator: bytes requested and not freed) / N."
  echo "SO_MEMINFO = the server's \`pushlab_socket_kernel_bytes\` / N (queued data and forward"
  echo "allocation: 0 for an idle socket). Kernel slab = growth of every /proc/slabinfo cache's"
  echo "objects in use / N, for both ends of each loopback connection (the probe's sockets"
  echo "live in the same kernel) and whatever else the machine did meanwhile."
  echo
  echo "| build | transport | heap B/conn | goal (<= 10 KiB) | SO_MEMINFO B/conn | kernel slab B per connection pair |"
  echo "|---|---|--:|---|--:|--:|"
  for r in "${results[@]}"; do
    label=${r%%|*}
    json=${r#*|}
    python3 - "$label" "$json" <<'PY'
import json
import sys

label, d = sys.argv[1], json.loads(sys.argv[2])
heap = d["heap_bytes_per_connection"]
names = {"sse": "SSE", "stream": "chunked stream", "ws": "WebSocket"}


def fmt(v):
    return "" if v is None else f"{v:,.0f}"


goal = "met" if heap <= 10240 else "NOT met"
slab = d.get("kernel_slab_bytes_per_connection_pair")
print(f"| {label} | {names[d['transport']]} | {fmt(heap)} | {goal} | "
      f"{fmt(d['kernel_bytes_per_connection'])} | {fmt(slab)} |")
PY
  done
  echo
  echo "The patched build is a measurement, not the lab's server: hyper 1.x has no server option"
  echo "to start its HTTP/1 read buffer or its response-head buffer below 8 KiB"
  echo "(scripts/hyper-small-buffers.patch says which two constants it changes and why)."
} > results/MEMORY.md
echo "wrote results/MEMORY.md" >&2
