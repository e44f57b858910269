#!/usr/bin/env bash
# dwebsocket 0.5.12 on Django 3.0 (pushlab_dws/) under gunicorn's threaded worker, in the
# foreground on 127.0.0.1:PORT, as a WebSocket-only peer for
# `pushlab-loadgen run --target http://127.0.0.1:PORT --transports ws`:
#
#   scripts/peers/dwebsocket/run.sh PORT [--threads N]    (default 50)
#   scripts/peers/dwebsocket/run.sh install               (installs and exits; .ci/run)
#
# One process (the feed lives in it), N threads: an open WebSocket holds a thread for its whole
# life, so N is how many WebSockets it serves at once; the next ones wait in the accept queue
# (scripts/peers/dwebsocket/capacity.py measures that). Installs requirements.txt into a venv
# under ~/.cache/pushlab when missing. SIGTERM (or Ctrl-C) stops gunicorn.
set -euo pipefail
port=${1:?usage: run.sh PORT [--threads N]}
shift
threads=50
while [ $# -gt 0 ]; do
  case $1 in
    --threads) threads=${2:?--threads N}; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/common.sh"
venv=$(peer_venv dwebsocket "$here/requirements.txt")
[ "$port" = install ] && exit 0

gunicorn=""
cleanup() {
  if [ -n "$gunicorn" ]; then kill -TERM "$gunicorn" 2>/dev/null || true; wait "$gunicorn" 2>/dev/null || true; fi
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
echo "dwebsocket (gunicorn gthread, 1 worker, $threads threads) on http://127.0.0.1:$port" >&2
cd "$here"
export PYTHONPATH=$here/../lib
"$venv/bin/gunicorn" --bind "127.0.0.1:$port" --worker-class gthread --workers 1 \
  --threads "$threads" --graceful-timeout 2 --log-level warning pushlab_dws.wsgi:application &
gunicorn=$!
wait "$gunicorn"
