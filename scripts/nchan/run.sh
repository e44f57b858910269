#!/usr/bin/env bash
# Starts nginx with the nchan module on 127.0.0.1:PORT (default 8090) in the foreground, as the
# peer server for `pushlab-loadgen run --target http://127.0.0.1:PORT --target-profile nchan`.
# Installs Debian's nginx-light and libnginx-mod-nchan when missing. SIGTERM (or Ctrl-C) stops
# nginx and removes its scratch directory (config, pid, error log).
set -euo pipefail
port=${1:-8090}
if [ ! -e /usr/lib/nginx/modules/ngx_nchan_module.so ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light libnginx-mod-nchan >/dev/null
  # Debian starts a system nginx on :80 on install; the lab does not need it.
  (systemctl stop nginx || service nginx stop || nginx -s stop) >/dev/null 2>&1 || true
fi
dir=$(mktemp -d /tmp/pushlab-nchan.XXXXXX)
here=$(cd "$(dirname "$0")" && pwd)
sed -e "s|@PORT@|$port|g" -e "s|@DIR@|$dir|g" "$here/nginx.conf.template" > "$dir/nginx.conf"
echo "nchan on http://127.0.0.1:$port (config $dir/nginx.conf)" >&2
nginx=""
cleanup() {
  local status=$?
  if [ -n "$nginx" ]; then kill -TERM "$nginx" 2>/dev/null || true; wait "$nginx" 2>/dev/null || true; fi
  if [ "$status" -ne 0 ] && [ "$status" -ne 143 ] && [ "$status" -ne 130 ] && [ -s "$dir/error.log" ]; then
    cat "$dir/error.log" >&2
  fi
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
nginx -c "$dir/nginx.conf" -p "$dir" &
nginx=$!
wait "$nginx"
