#!/usr/bin/env bash
# Autobahn|Testsuite fuzzingclient against pushlab-server's /echo (the same WebSocket session
# code as /ws/{topic}).
#
#   scripts/autobahn/run.sh            CI mode: every case but 12.* and 13.* (permessage-deflate,
#                                      which the server declines) and the largest of section 9
#   scripts/autobahn/run.sh --full     every case but 12.* and 13.*; writes results/AUTOBAHN.md
#
# Installs autobahntestsuite (Python 2.7 only) with the pins of requirements.txt into a
# virtualenv under ~/.cache/pushlab-autobahn (override: AUTOBAHN_VENV), made with
# virtualenv 20.15.1 (the last release that runs on Python 2.7). Python 2.7 comes from pyenv
# (PYTHON27 overrides). Starts the server on 127.0.0.1 (port: AUTOBAHN_PORT, default 9001)
# from the newer of target/release and target/debug (SERVER overrides; built if missing), runs the suite,
# and exits non-zero if any case's result is not OK, NON-STRICT or INFORMATIONAL.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
mode=ci
[ "${1:-}" = "--full" ] && mode=full

py27=${PYTHON27:-$(ls -d "$HOME"/.pyenv/versions/2.7.*/bin/python 2>/dev/null | tail -1)}
[ -x "$py27" ] || { echo "autobahn: Python 2.7 not found (set PYTHON27)" >&2; exit 2; }
venv=${AUTOBAHN_VENV:-$HOME/.cache/pushlab-autobahn/venv}
req=scripts/autobahn/requirements.txt
stamp="$venv/.pushlab-requirements"
if ! cmp -s "$req" "$stamp" 2>/dev/null; then
  echo "== autobahn: installing into $venv"
  tool="$(dirname "$venv")/virtualenv-20.15.1"
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  [ -d "$tool" ] || "$py27" -m pip install -q --disable-pip-version-check --target "$tool" 'virtualenv==20.15.1'
  PYTHONPATH="$tool" "$py27" -m virtualenv -q "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check --no-deps -r "$req"
  cp "$req" "$stamp"
fi

server=${SERVER:-}
if [ -z "$server" ]; then
  target=${CARGO_TARGET_DIR:-$root/target}
  # The newer of the release and debug builds (a stale one would test old code).
  server=$(ls -t "$target/release/pushlab-server" "$target/debug/pushlab-server" 2>/dev/null | head -1 || true)
  if [ -z "$server" ]; then
    cargo build -q -p pushlab-server --bin pushlab-server
    server="$target/debug/pushlab-server"
  fi
fi
port=${AUTOBAHN_PORT:-9001}
work=$(mktemp -d)
# Section 9 sends messages of up to 16 MiB; the server's limit is raised to take them.
"$server" --bind "127.0.0.1:$port" --tick-rate 0 --max-message-bytes $((16 * 1024 * 1024 + 1024)) \
  >"$work/server.log" 2>&1 &
server_pid=$!
trap 'kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
  sleep 0.1
done

if [ "$mode" = full ]; then
  exclude='["12.*", "13.*"]'
else
  # The largest of section 9: 4, 8 and 16 MiB single messages, 4 MiB fragmented ones.
  exclude='["12.*", "13.*", "9.1.4", "9.1.5", "9.1.6", "9.2.4", "9.2.5", "9.2.6", "9.3.*", "9.4.*"]'
fi
cat >"$work/fuzzingclient.json" <<JSON
{
  "outdir": "$work/reports",
  "servers": [{"agent": "pushlab", "url": "ws://127.0.0.1:$port/echo"}],
  "cases": ["*"],
  "exclude-cases": $exclude,
  "exclude-agent-cases": {}
}
JSON
echo "== autobahn ($mode): wstest fuzzingclient against ws://127.0.0.1:$port/echo"
start=$(date +%s)
(cd "$work" && "$venv/bin/wstest" -m fuzzingclient -s fuzzingclient.json >"$work/wstest.log" 2>&1) || {
  tail -20 "$work/wstest.log" >&2; exit 1; }
secs=$(( $(date +%s) - start ))
echo "== autobahn: suite took ${secs} s"

python3 - "$work/reports/index.json" "$mode" "$secs" "$("$server" --version) ($(basename "$(dirname "$server")") build)" <<'PY'
import collections, json, sys
index, mode, secs, version = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
cases = json.load(open(index))["pushlab"]
ok = {"OK", "NON-STRICT", "INFORMATIONAL"}
bad = sorted(((c, r["behavior"], r.get("behaviorClose")) for c, r in cases.items()
              if r["behavior"] not in ok or r.get("behaviorClose") not in ok | {None}),
             key=lambda x: [int(p) for p in x[0].split(".")])
by_section = collections.OrderedDict()
for c in sorted(cases, key=lambda c: [int(p) for p in c.split(".")]):
    counts = by_section.setdefault(c.split(".")[0], collections.Counter())
    counts[cases[c]["behavior"]] += 1
names = {"1": "framing", "2": "ping/pong", "3": "reserved bits", "4": "opcodes",
         "5": "fragmentation", "6": "UTF-8 handling", "7": "close handling",
         "9": "limits/performance", "10": "misc"}
print("%d cases: %s" % (len(cases), dict(sum(by_section.values(), collections.Counter()))))
for c, b, bc in bad:
    print("FAILED case %s: behavior %s, close %s" % (c, b, bc))
if mode == "full":
    kinds = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"]
    lines = ["# Autobahn|Testsuite against pushlab-server /echo", "",
             "Written by `scripts/autobahn/run.sh --full` (autobahntestsuite 25.10.1, fuzzingclient;",
             "sections 12 and 13, permessage-deflate, excluded: the server declines it).",
             "Server: %s, `--max-message-bytes 16778240`. Suite time: %s s." % (version, secs), "",
             "| section | cases | " + " | ".join(kinds) + " |",
             "|---|---:|" + "---:|" * len(kinds)]
    for s, counts in by_section.items():
        lines.append("| %s %s | %d | %s |" % (s, names.get(s, ""), sum(counts.values()),
                     " | ".join(str(counts.get(k, 0)) for k in kinds)))
    total = sum(by_section.values(), collections.Counter())
    lines.append("| all | %d | %s |" % (sum(total.values()), " | ".join(str(total.get(k, 0)) for k in kinds)))
    lines += ["", "Cases not OK, NON-STRICT or INFORMATIONAL: %s." % (", ".join(c for c, _, _ in bad) or "none")]
    open("results/AUTOBAHN.md", "w").write("\n".join(lines) + "\n")
    print("wrote results/AUTOBAHN.md")
sys.exit(1 if bad else 0)
PY
