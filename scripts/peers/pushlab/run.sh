#!/usr/bin/env bash
# pushlab-server on 127.0.0.1:PORT in the foreground (exec: this pid is the server's), so
# compare.sh starts it like every peer. The binary: $PUSHLAB_BIN_DIR (default target/release).
set -euo pipefail
port=${1:?usage: run.sh PORT}
root=$(cd "$(dirname "$0")/../../.." && pwd)
exec "${PUSHLAB_BIN_DIR:-${CARGO_TARGET_DIR:-$root/target}/release}/pushlab-server" --bind "127.0.0.1:$port"
