#!/usr/bin/env bash
# Django Channels on daphne speaking pushlab's wire (pushlab_channels/), in the foreground on
# 127.0.0.1:PORT, as a peer for `pushlab-loadgen run --target http://127.0.0.1:PORT`:
#
#   scripts/peers/channels/run.sh PORT [--layer memory|redis]
#   scripts/peers/channels/run.sh install     (installs both layers' needs and exits; .ci/run)
#
# Installs requirements.txt into a venv under ~/.cache/pushlab when missing. --layer redis
# starts Debian's redis-server (installed when missing) on a free loopback port, persistence
# off, as the channels_redis layer's server; it is this script's child, so --server-pid on this
# script costs daphne and Redis together. SIGTERM (or Ctrl-C) stops both.
set -euo pipefail
port=${1:?usage: run.sh PORT [--layer memory|redis]}
shift
layer=memory
while [ $# -gt 0 ]; do
  case $1 in
    --layer) layer=${2:?--layer memory|redis}; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
case $layer in memory|redis) ;; *) echo "--layer must be memory or redis" >&2; exit 2 ;; esac
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/common.sh"
venv=$(peer_venv channels "$here/requirements.txt")
if [ "$port" = install ]; then
  command -v redis-server >/dev/null || peer_apt redis-server
  exit 0
fi

children=()
cleanup() {
  local p
  for p in "${children[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${children[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

export PUSHLAB_LAYER=$layer
if [ "$layer" = redis ]; then
  command -v redis-server >/dev/null || peer_apt redis-server
  rport=$(peer_free_port)
  redis-server --bind 127.0.0.1 --port "$rport" --save "" --appendonly no --daemonize no \
    --loglevel warning --dir /tmp >&2 &
  children+=($!)
  peer_wait_port "$rport" 10
  export PUSHLAB_REDIS_PORT=$rport
fi
echo "channels ($layer layer) on http://127.0.0.1:$port" >&2
cd "$here"
export PYTHONPATH=$here/../lib
"$venv/bin/daphne" -b 127.0.0.1 -p "$port" -v 0 pushlab_channels.asgi:application &
children+=($!)
wait "${children[-1]}"
