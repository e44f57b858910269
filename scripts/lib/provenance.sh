# Shared by the scripts that write results/: where a result came from. Source it, then call
# provenance; it sets `commit` (HEAD, marked when loadgen/server/proto have uncommitted changes),
# `cpu` (model name), `mem_gib` (MemTotal in GiB, one decimal) and `os` (PRETTY_NAME).
provenance() {
  commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
  if [ -n "$(git status --porcelain -- loadgen server proto Cargo.toml Cargo.lock 2>/dev/null)" ]; then
    commit="$commit (with uncommitted changes to the code)"
  fi
  cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || true)
  mem_gib=$(awk '/MemTotal/ { printf "%.1f", $2 / 1048576 }' /proc/meminfo)
  os=$(. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-unknown}" || echo unknown)
}
