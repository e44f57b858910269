# Shared by the scripts that start a server on 127.0.0.1: source it, then
#   port=$(free_port)     a port nothing listens on, below the ephemeral range (so no client
#                         socket of the run takes it meanwhile); exits 1 after 50 tries
#   wait_port PORT [S]    until something accepts on 127.0.0.1:PORT, at most S seconds (30)
free_port() {
  local p low
  low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  for _ in $(seq 50); do
    p=$((10000 + RANDOM % (low - 10000)))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  echo "no free port found" >&2; return 1
}

wait_port() {
  for _ in $(seq $((${2:-30} * 20))); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "nothing listens on 127.0.0.1:$1" >&2; return 1
}
