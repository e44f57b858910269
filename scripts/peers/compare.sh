#!/usr/bin/env bash
# One scenario against every peer server and pushlab-server in turn, each a fresh process on a
# free loopback port, costed from /proc through its run script's pid (--server-pid; the peers
# have no /metrics):
#
#   scripts/peers/compare.sh OUT_DIR [pushlab-loadgen run flags...]
#
# writes OUT_DIR/NAME.json and NAME.md (the loadgen's table) per target, OUT_DIR/NAME.capacity.json
# (concurrent WebSockets served, dwebsocket/capacity.py) for the WebSocket targets, and
# results/PEERS.md with two charts in results/charts/ from them (scripts/peers/table.py). Without flags the scenario is 50 clients
# per transport, 10 msg/s of 64 B, polls every 1 s, 5 s measured after 1 s of warmup; flags
# given replace all of these. A target that is missing or does not start ends its part with one
# line naming what is missing; the others still run.
set -euo pipefail
out=${1:?usage: scripts/peers/compare.sh OUT_DIR [pushlab-loadgen run flags...]}
shift
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
. "$here/lib/common.sh"
if [ $# -gt 0 ]; then
  flags=("$@")
else
  flags=(--clients 50 --rate 10 --payload-bytes 64 --poll-interval 1s --duration 5s --warmup 1s)
fi
mkdir -p "$out"
rm -f "$out"/*.json "$out"/*.md "$out"/*.log

echo "== build" >&2
(cd "$root" && cargo build --release -q -p pushlab-loadgen -p pushlab-server)
bin=${CARGO_TARGET_DIR:-$root/target}/release

pid=""
stop() {
  if [ -n "$pid" ]; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=""
  fi
}
trap stop EXIT

# target NAME LABEL "TRANSPORTS" "PROFILE" COMMAND...: starts COMMAND (which takes PORT first),
# measures it, stops it.
target() {
  local name=$1 label=$2 transports=$3 profile=$4 port
  shift 4
  echo "== $label" >&2
  port=$(peer_free_port)
  "$1" "$port" "${@:2}" >"$out/$name.log" 2>&1 &
  pid=$!
  local waited=0
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null && [ $waited -lt 3600 ] || break  # 180 s (installs included)
    sleep 0.05; waited=$((waited + 1))
  done
  if ! kill -0 "$pid" 2>/dev/null || [ $waited -ge 3600 ]; then
    echo "$label: not started: $(grep -v '^\s*$' "$out/$name.log" | tail -1)" | tee "$out/$name.missing" >&2
    stop
    return 0
  fi
  if [ "$profile" = pushlab ]; then  # serving, not only listening (Pushpin's origin, ...)
    for _ in $(seq 300); do
      curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$port/healthz" && break
      sleep 0.1
    done
  fi
  echo "## $label" > "$out/$name.md"
  "$bin/pushlab-loadgen" run --target "http://127.0.0.1:$port" --target-profile "$profile" \
    --server-pid "$pid" --transports "$transports" "${flags[@]}" --out "$out/$name.json" \
    >>"$out/$name.md" 2>>"$out/$name.log" ||
    echo "$label: the run failed or lost messages (see $out/$name.md and $name.log)" >&2
  if [[ $transports == all || $transports == *ws* ]] && [ "$profile" = pushlab ]; then
    python3 "$here/dwebsocket/capacity.py" "$port" --max 200 --timeout 3 \
      >"$out/$name.capacity.json" 2>>"$out/$name.log" || rm -f "$out/$name.capacity.json"
  fi
  stop
}

# pushlab-server first: the others are compared with it (it has /metrics: its own CPU and
# memory figures are used, not /proc's).
export PUSHLAB_BIN_DIR=$bin
target pushlab "pushlab-server" all pushlab "$here/pushlab/run.sh"
# Each run script installs what it lacks; one that cannot start leaves one line saying why.
target nchan "nginx-nchan" all nchan "$root/scripts/nchan/run.sh"
target pushpin "Pushpin" all pushlab "$here/pushpin/run.sh"
target channels-memory "Channels (in-memory layer)" all pushlab "$here/channels/run.sh" --layer memory
target channels-redis "Channels (Redis layer)" all pushlab "$here/channels/run.sh" --layer redis
# One thread per open WebSocket, and publishing needs one too: 64 threads for 50 clients.
target dwebsocket "dwebsocket" ws pushlab "$here/dwebsocket/run.sh" --threads 64

python3 "$here/table.py" "$out" "${flags[*]}" "$root/results/charts" > "$root/results/PEERS.md"
echo "wrote $root/results/PEERS.md" >&2
