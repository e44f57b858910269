#!/usr/bin/env bash
# One scenario, all five transports, against nginx-nchan and against pushlab-server, each
# transport on a FRESH server process (started here on a free loopback port, stopped after its
# phase), so no transport's memory per connection is hidden by memory an earlier one freed:
#
#   scripts/nchan/compare.sh OUT_DIR [pushlab-loadgen run flags...]
#
# writes OUT_DIR/{nchan,pushlab}.json (the five single-transport runs merged with
# `pushlab-loadgen merge`), each transport's run in OUT_DIR/{nchan,pushlab}/TRANSPORT.json and the
# summary tables it prints to OUT_DIR/{nchan,pushlab}.md. Without flags the scenario is 100
# clients per transport, 10 msg/s of 32 B, polls every 1 s, 5 s measured after 1 s of warmup
# (about 3 minutes for both, after the build); flags given replace all of these.
# nchan's config is scripts/nchan/nginx.conf.template (started by scripts/nchan/run.sh); it
# has no /metrics: its CPU is read from /proc/PID/task/*/schedstat and its RSS from statm
# (--server-pid: run.sh, nginx's master and worker), its sockets' kernel memory from `ss`, and
# its own byte counts are left out.
#
# REPEATS=N (default 1) measures every transport N times, nchan and pushlab-server back to
# back each time (OUT_DIR/repeats/); the first repeat also goes where a single run always went.
# Then results/NCHAN.md (scripts/nchan/table.py): issue 14's goals, pushlab-server's server
# CPU per delivery and p99 over nchan's, per transport, as the median ratio over the repeats.
# PUSHLAB_SERVER_FLAGS adds flags to pushlab-server's command line (e.g. `--worker-threads 1`,
# one thread as nginx's one worker process here); NCHAN.md names them.
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

# Below the ephemeral range, so a port picked here is not one the loadgen's own client
# sockets (or their TIME_WAITs) hold: a server could not bind it.
# shellcheck source=../lib/ports.sh
. "$root/scripts/lib/ports.sh"

pids=()
stop_all() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}
trap stop_all EXIT

transports=(poll longpoll sse stream ws)
repeats=${REPEATS:-1}
case "$repeats" in ''|*[!0-9]*|0) echo "REPEATS must be a whole number >= 1" >&2; exit 2 ;; esac
mkdir -p "$out/nchan" "$out/pushlab" "$out/repeats/nchan" "$out/repeats/pushlab"
nchan_version="nginx $(nginx -v 2>&1 | sed 's/.*: //'), libnginx-mod-nchan $(dpkg-query -W -f='${Version}' libnginx-mod-nchan 2>/dev/null || echo '?')"
echo "## nginx-nchan ($nchan_version)" > "$out/nchan.md"
echo "## pushlab-server" > "$out/pushlab.md"

# One transport phase on a fresh server: run_nchan|run_pushlab TRANSPORT OUT_JSON
run_nchan() {
  local port
  port=$(free_port)
  "$here/run.sh" "$port" &            # SIGTERM to it stops nginx
  pids+=($!)
  local nchan_pid=$!
  wait_port "$port"
  "$bin/pushlab-loadgen" run --target "http://127.0.0.1:$port" --target-profile nchan \
    --server-pid "$nchan_pid" --transports "$1" "${flags[@]}" --out "$2" | tee -a "$out/nchan.md" ||
    echo "(the nchan $1 run failed or lost messages: see above)" >&2
  stop_all
}
run_pushlab() {
  local port
  port=$(free_port)
  # shellcheck disable=SC2086 # PUSHLAB_SERVER_FLAGS is a list of flags
  "$bin/pushlab-server" --bind "127.0.0.1:$port" ${PUSHLAB_SERVER_FLAGS:-} >/dev/null 2>&1 &
  pids+=($!)
  local server_pid=$!
  wait_port "$port"
  "$bin/pushlab-loadgen" run --target "http://127.0.0.1:$port" --server-pid "$server_pid" \
    --transports "$1" "${flags[@]}" --out "$2" | tee -a "$out/pushlab.md" ||
    echo "(the pushlab $1 run failed or lost messages: see above)" >&2
  stop_all
}

# Per transport, nchan and pushlab-server back to back, REPEATS times (the ratio a goal reads
# is taken within one repeat: both servers under the same load of the shared machine).
for t in "${transports[@]}"; do
  for r in $(seq "$repeats"); do
    echo "== $t, repeat $r of $repeats: nginx-nchan, then pushlab-server" >&2
    run_nchan "$t" "$out/repeats/nchan/$t.$r.json"
    run_pushlab "$t" "$out/repeats/pushlab/$t.$r.json"
  done
  for target in nchan pushlab; do
    if [ -f "$out/repeats/$target/$t.1.json" ]; then
      cp "$out/repeats/$target/$t.1.json" "$out/$target/$t.json"
    fi
  done
done

for target in nchan pushlab; do
  files=()
  for t in "${transports[@]}"; do
    if [ -f "$out/$target/$t.json" ]; then files+=("$out/$target/$t.json"); fi
  done
  if [ ${#files[@]} -gt 0 ]; then
    "$bin/pushlab-loadgen" merge "${files[@]}" --out "$out/$target.json"
  fi
done

PUSHLAB_COMMIT="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')" \
NCHAN_VERSION="$nchan_version" python3 "$here/table.py" "$out" \
  "REPEATS=$repeats${PUSHLAB_SERVER_FLAGS:+ PUSHLAB_SERVER_FLAGS='$PUSHLAB_SERVER_FLAGS'} scripts/nchan/compare.sh $out ${flags[*]}" > "$root/results/NCHAN.md"
echo "wrote $root/results/NCHAN.md" >&2
