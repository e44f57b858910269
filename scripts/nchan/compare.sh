#!/usr/bin/env bash
# One scenario, all five transports, against nginx-nchan and against pushlab-server, each
# started here on a free loopback port and stopped at the end:
#
#   scripts/nchan/compare.sh OUT_DIR [pushlab-loadgen run flags...]
#
# writes OUT_DIR/{nchan,pushlab}.json and the summary tables it prints to OUT_DIR/{nchan,pushlab}.md. Without
# flags the scenario is 100 clients per transport, 10 msg/s of 32 B, polls every 1 s, 5 s
# measured after 1 s of warmup (about 2 minutes for both, after the build); flags given replace all of these.
# nchan's config is scripts/nchan/nginx.conf.template (started by scripts/nchan/run.sh); it
# has no /metrics: its CPU and memory are read from /proc (--server-pid: run.sh, nginx's master
# and worker), and its own byte counts are left out.
set -euo pipefail
out=${1:?usage: scripts/nchan/compare.sh OUT_DIR [pushlab-loadgen run flags...]}
shift
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
if [ $# -gt 0 ]; then
  flags=("$@")
else
  flags=(--clients 100 --rate 10 --payload-bytes 32 --poll-interval 1s --duration 5s --warmup 1s)
fi
mkdir -p "$out"

echo "== build" >&2
(cd "$root" && cargo build --release -q -p pushlab-loadgen -p pushlab-server)
bin=$root/target/release

free_port() {
  local p
  for _ in $(seq 50); do
    p=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  echo "no free port found" >&2; return 1
}
wait_port() {
  for _ in $(seq 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "nothing listens on 127.0.0.1:$1" >&2; return 1
}

pids=()
stop_all() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}
trap stop_all EXIT

echo "== nginx-nchan" >&2
port=$(free_port)
"$here/run.sh" "$port" &            # SIGTERM to it stops nginx
pids+=($!)
nchan_pid=$!
wait_port "$port"
echo "## nginx-nchan ($(nginx -v 2>&1 | sed 's/.*: //'), libnginx-mod-nchan $(dpkg-query -W -f='${Version}' libnginx-mod-nchan 2>/dev/null || echo '?'))" | tee "$out/nchan.md"
"$bin/pushlab-loadgen" run --target "http://127.0.0.1:$port" --target-profile nchan \
  --server-pid "$nchan_pid" --transports all "${flags[@]}" --out "$out/nchan.json" | tee -a "$out/nchan.md" ||
  echo "(the nchan run failed or lost messages: see above)" >&2
stop_all

echo "== pushlab-server" >&2
port=$(free_port)
"$bin/pushlab-server" --bind "127.0.0.1:$port" >/dev/null 2>&1 &
pids+=($!)
wait_port "$port"
echo "## pushlab-server" | tee "$out/pushlab.md"
"$bin/pushlab-loadgen" run --target "http://127.0.0.1:$port" \
  --transports all "${flags[@]}" --out "$out/pushlab.json" | tee -a "$out/pushlab.md" ||
  echo "(the pushlab run failed or lost messages: see above)" >&2
stop_all

