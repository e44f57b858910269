#!/usr/bin/env bash
# Soak: a release pushlab-server under N bounded minutes of mixed transports with churning
# connections (the soak client in server/tests/hostile/soak.rs: 30 subscribers of all five
# transports reconnecting every 0.2-4 s, often mid-message and with RST, a publisher at
# 100 msg/s on renewed keep-alive connections, 10 abusive connections a second, the ticker on).
#
# Prints the server's RSS (from /metrics) idle, at the start of the soak (after a warm-up), every
# 30 s, and at the end. Exits non-zero if RSS grew past the bound, the retained bytes moved, a
# message was lost or duplicated, or connections or tasks were left behind.
#
#   scripts/soak.sh                  # 10 minutes
#   scripts/soak.sh --minutes 2 --out soak.json
#
# Warm-up: every ring fills before the start figure (the ticker runs at 1000 msg/s until its
# 4096-message ring is full, then at 5 msg/s; the soak topic fills at 100 msg/s in 41 s), and
# the start waits for the retained-messages gauge to stop moving (the plateau): from then on a
# leak-free server holds its memory flat.
# Bound: RSS at the end <= RSS at the start + 5 %, and pushlab_retained_bytes within 1 % of
# its start (messages differ only in their seq and timestamp digits).
set -euo pipefail

MINUTES=10
OUT=""
usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) MINUTES="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done
case "$MINUTES" in ''|*[!0-9.]*) echo "--minutes takes a number" >&2; exit 2 ;; esac
SECS=$(python3 -c "print(max(10, int(float('$MINUTES') * 60)))")

cd "$(dirname "$0")/.."
echo "== building (release server, soak client)"
cargo build --release -q -p pushlab-server
cargo test -q -p pushlab-server --test hostile --no-run 2>/dev/null

WORK=$(mktemp -d)
SERVER_PID=""
CLIENT_PID=""
cleanup() {
  [ -n "$CLIENT_PID" ] && kill "$CLIENT_PID" 2>/dev/null || true
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

NO_COLOR=1 target/release/pushlab-server --bind 127.0.0.1:0 --tick-rate 5 >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
ADDR=""
for _ in $(seq 100); do
  ADDR=$(sed 's/\x1b\[[0-9;]*m//g' "$WORK/server.log" | sed -n 's#.*listening on http://\([0-9.]*:[0-9]*\).*#\1#p' | head -1)
  [ -n "$ADDR" ] && break
  sleep 0.1
done
[ -n "$ADDR" ] || { echo "server did not start:"; cat "$WORK/server.log"; exit 1; }

metrics() { curl -sf --max-time 5 "http://$ADDR/metrics"; }
metric() { metrics | awk -v n="$1" '$1 == n { print $2 }'; }
# Open connections, less the one asking (the /metrics scrape counts itself).
open_connections() { metrics | awk '/^pushlab_open_connections\{/ { s += $2 } END { print s - 1 }'; }
mib() { python3 -c "print(f'{int($1) / 1048576:.1f}')"; }

RSS_IDLE=$(metric process_resident_memory_bytes)
TASKS_IDLE=$(metric pushlab_runtime_alive_tasks)
# Fill the ticker's ring now rather than over 13 minutes at 5 msg/s (bounded: 30 s).
HISTORY=4096
curl -sf --max-time 5 -X POST "http://$ADDR/ticker?rate=1000" >/dev/null
for _ in $(seq 300); do
  [ "$(metric pushlab_retained_messages)" -ge "$HISTORY" ] && break
  sleep 0.1
done
curl -sf --max-time 5 -X POST "http://$ADDR/ticker?rate=5" >/dev/null
echo "== server $ADDR (pid $SERVER_PID): idle RSS $(mib "$RSS_IDLE") MiB, $TASKS_IDLE tasks; soaking ${SECS} s"

PUSHLAB_SOAK_ADDR="$ADDR" PUSHLAB_SOAK_SECS="$SECS" PUSHLAB_SOAK_OUT="$WORK/client.json" \
  cargo test -q -p pushlab-server --test hostile soak::soak -- --ignored --exact --nocapture \
  >"$WORK/client.log" 2>&1 &
CLIENT_PID=$!
T0=$SECONDS

# Warm-up: the soak topic's ring (4096 messages, 41 s at 100 msg/s) fills and allocator pools
# settle before the start figure: 45 to 60 s, or a quarter of a shorter soak; then the plateau:
# the retained-messages gauge holds still for 5 s and RSS moves under 1 % over 10 s (bounded by
# a quarter of the soak; if it is not reached the script says so and starts anyway).
WARMUP=$(( SECS / 4 > 60 ? 60 : (SECS / 4 < 45 ? 45 : SECS / 4) ))
[ "$WARMUP" -ge "$SECS" ] && WARMUP=$(( SECS / 4 ))
sleep "$WARMUP"
LAST=$(metric pushlab_retained_messages); STILL=0; RSS_HIST=""; PLATEAU=0
for _ in $(seq $(( SECS / 4 + 10 ))); do
  sleep 1
  WARMUP=$(( SECONDS - T0 ))
  NOW=$(metric pushlab_retained_messages)
  [ "$NOW" = "$LAST" ] && STILL=$(( STILL + 1 )) || STILL=0
  LAST=$NOW
  RSS_HIST="$RSS_HIST $(metric process_resident_memory_bytes)"
  if [ "$STILL" -ge 5 ] && python3 -c "
r = [int(x) for x in '$RSS_HIST'.split()][-11:]
raise SystemExit(0 if len(r) == 11 and abs(r[-1] - r[0]) <= r[-1] // 100 else 1)"; then
    PLATEAU=1; break
  fi
done
[ "$PLATEAU" -eq 1 ] || echo "   (no plateau within the warm-up: retained messages $LAST, RSS still moving)"
RSS_START=$(metric process_resident_memory_bytes)
HEAP_START=$(metric pushlab_heap_bytes || echo 0)
RETAINED_START=$(metric pushlab_retained_bytes)
echo "   t=${WARMUP}s RSS start $(mib "$RSS_START") MiB, retained $(mib "$RETAINED_START") MiB ($LAST messages), $(open_connections) connections open"
SAMPLES="$WARMUP:$RSS_START"
RSS_MAX=$RSS_START
ELAPSED=$WARMUP
NEXT_SAMPLE=$(( (WARMUP / 30 + 1) * 30 ))
while kill -0 "$CLIENT_PID" 2>/dev/null; do
  sleep 1
  # Wall-clock seconds since the client started (scrapes take time under load).
  ELAPSED=$(( SECONDS - T0 ))
  if [ "$ELAPSED" -ge "$NEXT_SAMPLE" ] && [ "$ELAPSED" -le "$SECS" ]; then
    NEXT_SAMPLE=$(( NEXT_SAMPLE + 30 ))
    R=$(metric process_resident_memory_bytes || echo 0)
    SAMPLES="$SAMPLES $ELAPSED:$R"
    [ "$R" -gt "$RSS_MAX" ] && RSS_MAX=$R
    H=$(metric pushlab_heap_bytes); echo "   t=${ELAPSED}s RSS $(mib "$R") MiB, heap $(mib "${H:-0}") MiB, $(open_connections) connections open"
  fi
  if [ "$ELAPSED" -gt $(( SECS + 300 )) ]; then
    echo "soak client did not finish" >&2
    exit 1
  fi
done
CLIENT_OK=0
wait "$CLIENT_PID" || CLIENT_OK=$?
CLIENT_PID=""
RSS_END=$(metric process_resident_memory_bytes)
HEAP_END=$(metric pushlab_heap_bytes || echo 0)
RETAINED_END=$(metric pushlab_retained_bytes)
[ "$RSS_END" -gt "$RSS_MAX" ] && RSS_MAX=$RSS_END
SAMPLES="$SAMPLES end:$RSS_END"

# Everything the soak opened must close; streams notice a gone client at the latest at their
# next heartbeat (15 s).
OPEN=1
for _ in $(seq 30); do
  OPEN=$(open_connections)
  [ "$OPEN" -eq 0 ] && break
  sleep 1
done
TASKS_AFTER=$(metric pushlab_runtime_alive_tasks)
[ -f "$WORK/client.json" ] || { echo "soak client failed:"; tail -40 "$WORK/client.log"; exit 1; }

RESULT=$(python3 - "$WORK/client.json" <<EOF
import json, sys
client = json.load(open(sys.argv[1]))
start, end = $RSS_START, $RSS_END
bound = start + start // 20
retained_start, retained_end = $RETAINED_START, $RETAINED_END
retained_flat = abs(retained_end - retained_start) <= retained_start // 100
samples = [(t, int(r)) for t, r in (s.split(":") for s in "$SAMPLES".split())]
out = {
    "minutes": $SECS / 60, "server": "$ADDR",
    "rss_idle_bytes": $RSS_IDLE, "rss_start_bytes": start, "rss_end_bytes": end,
    "rss_max_bytes": $RSS_MAX, "rss_bound_bytes": bound, "rss_samples": samples,
    "rss_drift_percent": round(100.0 * (end - start) / start, 2),
    "retained_start_bytes": retained_start, "retained_end_bytes": retained_end,
    "heap_start_bytes": ${HEAP_START:-0}, "heap_end_bytes": ${HEAP_END:-0}, "plateau": $PLATEAU == 1,
    "open_connections_after": $OPEN, "tasks_idle": $TASKS_IDLE, "tasks_after": $TASKS_AFTER,
    "client": client, "client_exit": $CLIENT_OK,
}
out["pass"] = (end <= bound and retained_flat and client["lost"] == 0 and client["duplicates"] == 0
               and $OPEN == 0 and $CLIENT_OK == 0 and $TASKS_AFTER <= $TASKS_IDLE + 2)
print(json.dumps(out))
EOF
)
[ -n "$OUT" ] && echo "$RESULT" >"$OUT"
echo "$RESULT" >"$WORK/result.json"
python3 - "$WORK/result.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
c = r["client"]
def m(b):
    return f"{b / 1048576:.1f} MiB"
print(f"== RSS idle {m(r['rss_idle_bytes'])}, start {m(r['rss_start_bytes'])}, "
      f"end {m(r['rss_end_bytes'])} ({r['rss_drift_percent']:+.2f} %), max {m(r['rss_max_bytes'])} "
      f"(bound {m(r['rss_bound_bytes'])}, start + 5 %)")
print(f"== retained {m(r['retained_start_bytes'])} at the start, {m(r['retained_end_bytes'])} at the end (bound: 1 %); "
      f"heap {m(r['heap_start_bytes'])} -> {m(r['heap_end_bytes'])}; plateau reached: {r['plateau']}")
print(f"== published {c['published']}; {c['subscribers']} subscribers over {c['sessions']} sessions "
      f"received {c['messages_received']}; lost {c['lost']}, duplicated {c['duplicates']}, "
      f"gap notices {c['gap_notices']}; {c['abusive_connections']} abusive connections")
print(f"== after: {r['open_connections_after']} connections open, tasks {r['tasks_idle']} idle -> {r['tasks_after']}")
print("== PASS" if r["pass"] else "== FAIL")
sys.exit(0 if r["pass"] else 1)
EOF
