#!/usr/bin/env bash
# The scale run (issue 15): subscribers by the ten thousand on this machine, measured, not
# projected.
#   1. builds pushlab-server and pushlab-loadgen (release);
#   2. every transport at EACH clients (default 10,000), one fresh server (or replica set) per
#      point -> OUT/each-<clients>.json;
#   3. WebSocket and SSE at BIG clients (default 100,000) -> OUT/big-<transport>-<clients>.json;
#   4. `capacity`: clients held at the SLO per transport -> OUT/capacity.json;
#   5. `report OUT` -> OUT/REPORT.md + OUT/charts/, and results/SCALE.md (the same report,
#      its chart links pointing into OUT/, with this run's setup on top).
#
#   scripts/scale.sh                                   # the full run (lead, quiet machine)
#   scripts/scale.sh --each 2000 --big 5000 --capacity-max 2000 --out /tmp/scale  # a proof
#   scripts/scale.sh --resume ...     # keep the points already in OUT (an interrupted run goes on)
#   scripts/scale.sh --no-capacity    # the points only
#
# A point that fails (a shard's error, a timeout) is named in SCALE.md with its exit status and
# the run goes on: nothing is merged from it and no figure stands in for it.
#
# One process holds at most 20,000 open files here, so the loadgen runs as shards
# (`run --shards`, each its own 127.0.0.x source addresses from --source-ips) and a point needs
# ceil(clients / PER_REPLICA) server processes. Several replicas share one feed only through
# Redis: with PUSHLAB_BACKPLANE=redis each point starts that many `pushlab-server --backplane
# URL` (PUSHLAB_REDIS_URL, or a Redis of its own from scripts/redis.sh on PUSHLAB_REDIS_PORT,
# default 6390, stopped at exit); without it a point that needs more
# than one server is skipped, and says so. Publishing is at --rate (0.1 to 1 msg/s) so the
# loadgen stays under its own saturation warning on 2 cores: a result whose loadgen saturated
# says so in its notes and in the report.
#
# Only loopback traffic; every command is bounded in clients and time (--point-timeout each).
set -euo pipefail
cd "$(dirname "$0")/.."
args="$*"

OUT=results/scale
EACH=10000
BIG=100000
RATE=0.5
DURATION=30s
WARMUP=5s
PER_REPLICA=15000
PER_SHARD=10000
CAPACITY_STEP=2000
CAPACITY_MAX=20000
CAPACITY_RATE=1
SLO=p99=250ms
POINT_TIMEOUT=1200
RESUME=0
CAPACITY=1
usage="usage: scripts/scale.sh [--resume] [--no-capacity] [--out DIR] [--each N] [--big N] [--rate R] [--duration D] [--capacity-step N] [--capacity-max N] [--slo pNN=D] [--point-timeout SECS]"
while [ $# -gt 0 ]; do
  case "$1" in
    --resume) RESUME=1; shift ;;
    --no-capacity) CAPACITY=0; shift ;;
    --out) OUT=${2:?$usage}; shift 2 ;;
    --each) EACH=${2:?$usage}; shift 2 ;;
    --big) BIG=${2:?$usage}; shift 2 ;;
    --rate) RATE=${2:?$usage}; shift 2 ;;
    --duration) DURATION=${2:?$usage}; shift 2 ;;
    --capacity-step) CAPACITY_STEP=${2:?$usage}; shift 2 ;;
    --capacity-max) CAPACITY_MAX=${2:?$usage}; shift 2 ;;
    --slo) SLO=${2:?$usage}; shift 2 ;;
    --point-timeout) POINT_TIMEOUT=${2:?$usage}; shift 2 ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
done
BACKPLANE=${PUSHLAB_BACKPLANE:-}
REDIS_URL=${PUSHLAB_REDIS_URL:-redis://127.0.0.1:6379}
case "$BACKPLANE" in
  "" | redis) ;;
  *) echo "PUSHLAB_BACKPLANE must be redis or unset, got $BACKPLANE" >&2; exit 2 ;;
esac

SERVER=${CARGO_TARGET_DIR:-target}/release/pushlab-server
BIN=${CARGO_TARGET_DIR:-target}/release/pushlab-loadgen
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
t0=$(date +%s)

echo "== build"
cargo build --release -p pushlab-server -p pushlab-loadgen

redis_started=""
if [ "$BACKPLANE" = redis ] && [ -z "${PUSHLAB_REDIS_URL:-}" ]; then
  # A lab Redis of its own (loopback, persistence off: scripts/redis.sh says why), stopped at exit.
  REDIS_PORT=${PUSHLAB_REDIS_PORT:-6390}
  scripts/redis.sh start "$REDIS_PORT" >/dev/null
  redis_started=$REDIS_PORT
  REDIS_URL=redis://127.0.0.1:$REDIS_PORT
fi

if [ "$RESUME" -eq 0 ]; then rm -rf "$OUT"; fi
rm -f "$OUT/logs/failed.txt"
mkdir -p "$OUT/logs"
pids=()
stop_servers() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
}
cleanup() {
  stop_servers
  if [ -n "$redis_started" ]; then scripts/redis.sh stop "$redis_started" >/dev/null || true; fi
}
trap cleanup EXIT

# start_servers N NAME: N fresh replicas on free loopback ports; sets TARGETS (comma list).
start_servers() {
  local n=$1 name=$2 i log addr
  TARGETS=""
  for i in $(seq 0 $((n - 1))); do
    log="$OUT/logs/$name-server-$i.log"
    local flags=(--bind 127.0.0.1:0 --tick-rate 0 --max-connections $((PER_REPLICA + 5000))
      --max-connections-per-ip $((PER_REPLICA + 5000)))
    if [ "$BACKPLANE" = redis ]; then flags+=(--backplane "$REDIS_URL"); fi
    "$SERVER" "${flags[@]}" >"$log" 2>&1 &
    pids+=($!)
    addr=""
    for _ in $(seq 1 100); do
      addr=$(grep -o 'listening on http://[0-9.:]*' "$log" | head -1 | sed 's/listening on //') || true
      [ -n "$addr" ] && break
      kill -0 "${pids[-1]}" 2>/dev/null || break
      sleep 0.1
    done
    [ -n "$addr" ] || { echo "replica $i did not start:"; cat "$log"; exit 1; } >&2
    TARGETS="${TARGETS:+$TARGETS,}$addr"
  done
}

ceil_div() { echo $(( ($1 + $2 - 1) / $2 )); }

# point NAME TRANSPORTS CLIENTS: one measured run on fresh servers.
point() {
  local name=$1 transports=$2 clients=$3
  local replicas shards
  replicas=$(ceil_div "$clients" "$PER_REPLICA")
  shards=$(ceil_div "$clients" "$PER_SHARD")
  [ "$shards" -ge 2 ] || shards=2
  if [ "$replicas" -gt 1 ] && [ "$BACKPLANE" != redis ]; then
    echo "== $name: SKIPPED: $clients clients need $replicas server processes (at most $PER_REPLICA connections each here) sharing one feed: set PUSHLAB_BACKPLANE=redis"
    echo "$name: skipped ($clients clients need $replicas replicas; no PUSHLAB_BACKPLANE=redis)" >>"$OUT/logs/skipped.txt"
    return 0
  fi
  if [ "$RESUME" -eq 1 ] && [ -s "$OUT/$name.json" ]; then
    echo "== $name: kept from an earlier run ($OUT/$name.json)"
    return 0
  fi
  echo "== $name: $transports x $clients clients, $replicas server(s), $shards loadgen shards, $RATE msg/s"
  start_servers "$replicas" "$name"
  local status=0
  timeout "$POINT_TIMEOUT" "$BIN" run --target "$TARGETS" --transports "$transports" \
    --clients "$clients" --shards "$shards" --source-ips 127.0.0.2-127.0.0.41 \
    --rate "$RATE" --duration "$DURATION" --warmup "$WARMUP" --idle 2s --poll-interval 1s \
    --out "$OUT/$name.json" 2> >(tee "$OUT/logs/$name-loadgen.err" >&2) || status=$?
  stop_servers
  if [ "$status" -ne 0 ]; then
    rm -f "$OUT/$name.json"
    echo "$name: failed (exit $status: $(grep -m1 'error:' "$OUT/logs/$name-loadgen.err" | tr '|' '/'))" >>"$OUT/logs/failed.txt"
  fi
}

point "each-$EACH" all "$EACH"
point "big-ws-$BIG" ws "$BIG"
point "big-sse-$BIG" sse "$BIG"

if [ "$CAPACITY" -eq 1 ]; then
  echo "== capacity at $SLO"
  cap_replicas=$(ceil_div "$CAPACITY_MAX" "$PER_REPLICA")
  if [ "$cap_replicas" -gt 1 ] && [ "$BACKPLANE" != redis ]; then
    cap_replicas=1
    CAPACITY_MAX=$PER_REPLICA
    echo "   (one server without PUSHLAB_BACKPLANE=redis: --capacity-max capped at $CAPACITY_MAX)"
  fi
  start_servers "$cap_replicas" capacity
  cap_shards=$(ceil_div "$CAPACITY_MAX" "$PER_SHARD")
  [ "$cap_shards" -ge 2 ] || cap_shards=2
  timeout $((POINT_TIMEOUT * 3)) "$BIN" capacity --target "$TARGETS" --transports all \
    --slo "$SLO" --rate "$CAPACITY_RATE" --step "$CAPACITY_STEP" --max "$CAPACITY_MAX" \
    --duration 10s --warmup 2s --shards "$cap_shards" --source-ips 127.0.0.2-127.0.0.41 \
    --time-limit 40m --out "$OUT/capacity.json"
  stop_servers
fi

echo "== report"
"$BIN" report "$OUT" --out "$OUT"

finished=$(date -u +%Y-%m-%dT%H:%M:%SZ)
. scripts/lib/provenance.sh
provenance
rel=${OUT#results/}
{
  echo "# The scale run"
  echo
  echo "| | |"
  echo "|---|---|"
  echo "| command | \`scripts/scale.sh $args\` (PUSHLAB_BACKPLANE=${BACKPLANE:-unset}) |"
  echo "| started | $started |"
  echo "| finished | $finished ($(( $(date +%s) - t0 )) s) |"
  echo "| commit | $commit |"
  echo "| machine | ${cpu:-unknown}, $(nproc) cores, ${mem_gib} GiB, open files hard $(ulimit -Hn) |"
  capacity_line="capacity at $SLO, $CAPACITY_RATE msg/s, steps of $CAPACITY_STEP up to $CAPACITY_MAX"
  [ "$CAPACITY" -eq 1 ] || capacity_line="no capacity ladder (--no-capacity)"
  echo "| points | all transports x $EACH, ws and sse x $BIG at $RATE msg/s for $DURATION; $capacity_line |"
  echo "| layout | at most $PER_REPLICA connections per server replica, $PER_SHARD clients per loadgen shard, sources 127.0.0.2-127.0.0.41 |"
  if [ -s "$OUT/logs/failed.txt" ]; then
    echo "| failed | $(paste -sd';' "$OUT/logs/failed.txt") |"
  fi
  if [ -s "$OUT/logs/skipped.txt" ]; then
    echo "| skipped | $(paste -sd';' "$OUT/logs/skipped.txt") |"
  fi
  echo
  echo "The report below is \`pushlab-loadgen report $OUT\` ($OUT/REPORT.md), its chart links pointing into $rel/."
  echo
  sed -e "s#](charts/#]($rel/charts/#g" "$OUT/REPORT.md" | sed '1d'
} >results/SCALE.md.tmp
if [ "$OUT" = results/scale ]; then
  mv results/SCALE.md.tmp results/SCALE.md
  echo "wrote results/SCALE.md"
else
  mv results/SCALE.md.tmp "$OUT/SCALE.md"
  echo "wrote $OUT/SCALE.md (results/SCALE.md is only written for --out results/scale)"
fi
