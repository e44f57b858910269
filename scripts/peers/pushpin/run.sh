#!/usr/bin/env bash
# Debian's Pushpin in the foreground on 127.0.0.1:PORT with origin.py behind it (pushlab's wire
# through GRIP), as a peer for `pushlab-loadgen run --target http://127.0.0.1:PORT`:
#
#   scripts/peers/pushpin/run.sh PORT [--hold-delay-ms N]   (origin.py's fault for tests)
#   scripts/peers/pushpin/run.sh install      (apt-get install pushpin zurl when missing; .ci/run)
#
# Debian's /etc/pushpin/pushpin.conf expects a system-wide zurl service (ipc:///var/run/zurl)
# that nothing starts here, so this script writes its own config into a scratch directory:
# Pushpin's runner starts its own zurl beside condure, pushpin-proxy and pushpin-handler, every
# internal socket is an ipc socket in that directory, and the publish API listens on a free
# loopback port; id_cache_ttl=0 lets the origin's long-poll repair items through (origin.py's
# doc). The origin is this script's child too: --server-pid on this script costs
# Pushpin, zurl and the origin together. SIGTERM (or Ctrl-C) stops all and removes the directory.
set -euo pipefail
port=${1:?usage: run.sh PORT}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/common.sh"
peer_apt pushpin zurl
[ "$port" = install ] && exit 0

dir=$(mktemp -d /tmp/pushlab-pushpin.XXXXXX)
children=()
cleanup() {
  local p
  for p in "${children[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${children[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

origin=$(peer_free_port)
publish=$(peer_free_port)
sed 's|ipc:///var/run/zurl/zurl-|ipc://{rundir}/{ipc_prefix}zurl-|' /usr/lib/pushpin/internal.conf > "$dir/internal.conf"
cat > "$dir/pushpin.conf" <<CONF
[global]
include=$dir/internal.conf
rundir=$dir/run
ipc_prefix=pushpin-
port_offset=0
stats_connection_ttl=120

[runner]
services=condure,zurl,pushpin-proxy,pushpin-handler
http_port=127.0.0.1:$port
logdir=$dir/log
log_level=${PUSHPIN_LOG_LEVEL:-1}
client_buffer_size=8192
client_maxconn=50000
condure_bin=condure
zurl_bin=zurl

[proxy]
routesfile=$dir/routes
debug=false
auto_cross_origin=false
accept_x_forwarded_protocol=false
set_x_forwarded_protocol=proto-only
sig_iss=pushpin
sig_key=pushlab-lab-only
updates_check=off

[handler]
push_in_spec=ipc://$dir/run/push-in
push_in_sub_specs=ipc://$dir/run/push-in-sub
push_in_sub_connect=false
push_in_http_addr=127.0.0.1
push_in_http_port=$publish
push_in_http_max_headers_size=10000
push_in_http_max_body_size=1000000
stats_spec=ipc://{rundir}/{ipc_prefix}stats
command_spec=ipc://$dir/run/handler-command
message_rate=100000
message_hwm=100000
message_wait=5000
id_cache_ttl=0
connection_subscription_max=20
subscription_linger=60
stats_subscription_ttl=60
stats_report_interval=10
stats_format=tnetstring
CONF
echo "* 127.0.0.1:$origin,over_http" > "$dir/routes"
mkdir -p "$dir/run" "$dir/log"

PYTHONPATH=$here/../lib python3 "$here/origin.py" "$origin" "http://127.0.0.1:$publish/publish/" "${@:2}" &
children+=($!)
peer_wait_port "$origin" 20
echo "pushpin on http://127.0.0.1:$port (origin :$origin, publish API :$publish, config $dir)" >&2
pushpin --config "$dir/pushpin.conf" --merge-output &
children+=($!)
wait "${children[-1]}"
