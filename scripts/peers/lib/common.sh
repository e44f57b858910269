# Shared by the peers' run.sh scripts (sourced): a Python venv made from a pinned requirements
# file, apt installs that start no service, free loopback ports, and waiting for a port.

# The interpreter venvs are made with: pyenv's 3.11 when present, else python3.11, else python3.
peer_python() {
  local p
  for p in "$HOME/.pyenv/versions/3.11.7/bin/python" "$(command -v python3.11 || true)" "$(command -v python3 || true)"; do
    if [ -n "$p" ] && [ -x "$p" ]; then echo "$p"; return; fi
  done
  echo "no Python 3 found (wanted 3.11)" >&2; return 1
}

# peer_venv NAME REQUIREMENTS: prints the venv's directory, (re)installing when the requirements
# changed. Venvs live under $PUSHLAB_CACHE (default ~/.cache/pushlab), never in the repo.
peer_venv() {
  local name=$1 req=$2 dir stamp want
  dir=${PUSHLAB_CACHE:-$HOME/.cache/pushlab}/venv-$name
  stamp=$dir/.requirements.sha256
  want=$(sha256sum "$req" | cut -d' ' -f1)
  if [ ! -x "$dir/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "installing $name's Python packages into $dir" >&2
    rm -rf "$dir"
    "$(peer_python)" -m venv "$dir" >&2
    "$dir/bin/pip" install -q --disable-pip-version-check -r "$req" >&2
    echo "$want" > "$stamp"
  fi
  echo "$dir"
}

# peer_apt PACKAGE... : installs Debian packages when missing, with policy-rc.d saying "do not
# start" so no system service comes up on install.
peer_apt() {
  local missing=() p policy=""
  for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing ${missing[*]} (apt)" >&2
  [ -e /usr/sbin/policy-rc.d ] || { policy=/usr/sbin/policy-rc.d; printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; }
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >/dev/null
  [ -z "$policy" ] || rm -f "$policy"
}

# The peers run from the repo: no __pycache__ in it.
export PYTHONDONTWRITEBYTECODE=1

# A free TCP port on 127.0.0.1 (the kernel's choice).
peer_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# peer_wait_port PORT [SECONDS]: until something accepts on 127.0.0.1:PORT.
peer_wait_port() {
  local i
  for i in $(seq $((${2:-20} * 20))); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "nothing listens on 127.0.0.1:$1" >&2; return 1
}
