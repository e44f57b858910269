#!/usr/bin/env bash
# A lab Redis for the server replicas' backplane (pushlab-server --backplane redis://...).
#
#   scripts/redis.sh start PORT     # daemon on 127.0.0.1:PORT; prints its data dir
#   scripts/redis.sh stop PORT      # stops it (no save) and removes its data dir
#   scripts/redis.sh status PORT    # exit 0 if it answers PING
#
# Settings, and why:
# - bound to 127.0.0.1 only (protected mode on): the lab sends load to loopback alone, and a
#   Redis without a password must not face a network.
# - persistence off (--save '' --appendonly no): a run measures the push path, not disk
#   writes, and must not resume from a previous run's data; it is also the fault the replicas
#   are built to survive (a restart comes back empty, seqs carry on from what they hold).
# - its own dir under a temp path (pushlab-redis-PORT), so runs on several ports never share
#   files and `stop` leaves nothing behind.
# Needs redis-server and redis-cli (Debian: apt-get install redis-server; .ci/run does).
set -euo pipefail

usage() { sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; }
[ $# -eq 2 ] || { usage >&2; exit 2; }
cmd="$1"; port="$2"
case "$port" in
  ''|*[!0-9]*) echo "redis.sh: PORT must be a number, got '$port'" >&2; exit 2 ;;
esac
dir="${TMPDIR:-/tmp}/pushlab-redis-$port"

answers() { [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ]; }

case "$cmd" in
  start)
    command -v redis-server >/dev/null || { echo "redis.sh: redis-server not found (apt-get install redis-server)" >&2; exit 1; }
    if answers; then echo "redis.sh: something already answers on 127.0.0.1:$port" >&2; exit 1; fi
    mkdir -p "$dir"
    redis-server --bind 127.0.0.1 --port "$port" --protected-mode yes \
      --save '' --appendonly no --dir "$dir" \
      --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
    for _ in $(seq 100); do
      if answers; then echo "$dir"; exit 0; fi
      sleep 0.05
    done
    echo "redis.sh: redis-server did not answer on 127.0.0.1:$port within 5 s; its log:" >&2
    cat "$dir/redis.log" >&2 || true
    exit 1
    ;;
  stop)
    if answers; then redis-cli -h 127.0.0.1 -p "$port" shutdown nosave >/dev/null 2>&1 || true; fi
    for _ in $(seq 100); do
      answers || break
      sleep 0.05
    done
    if answers; then echo "redis.sh: redis on 127.0.0.1:$port did not stop" >&2; exit 1; fi
    rm -rf "$dir"
    ;;
  status)
    answers
    ;;
  *)
    usage >&2; exit 2 ;;
esac
