#!/usr/bin/env bash
# Writes results/RELIABILITY.md: every bad input tried, by class, with the server's answer; the
# faults survived; messages lost; the soak's memory figures; and the machine, versions, commit
# and command. It runs the hostile tests (server/tests/hostile.rs) with their probe log on, then
# scripts/soak.sh.
#
#   scripts/reliability.sh                   # soak of 2 minutes
#   scripts/reliability.sh --soak-minutes 10
set -euo pipefail

SOAK_MINUTES=2
while [ $# -gt 0 ]; do
  case "$1" in
    --soak-minutes) SOAK_MINUTES="$2"; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
COMMAND="scripts/reliability.sh --soak-minutes $SOAK_MINUTES"

cd "$(dirname "$0")/.."
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

echo "== hostile tests (probe log on)"
START=$(date +%s)
set +e
PUSHLAB_HOSTILE_LOG="$WORK/probes.jsonl" cargo test -p pushlab-server --test hostile 2>&1 | tee "$WORK/tests.log" | grep -E '^test |test result'
TESTS_EXIT=${PIPESTATUS[0]}
set -e
TESTS_S=$(( $(date +%s) - START ))

echo "== soak ($SOAK_MINUTES min)"
set +e
scripts/soak.sh --minutes "$SOAK_MINUTES" --out "$WORK/soak.json"
SOAK_EXIT=$?
set -e

mkdir -p results
python3 - "$WORK" "$TESTS_EXIT" "$TESTS_S" "$SOAK_EXIT" "$COMMAND" <<'EOF' >results/RELIABILITY.md
import json, os, platform, re, subprocess, sys

work, tests_exit, tests_s, soak_exit, command = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]

def sh(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return "?"

probes = []
path = os.path.join(work, "probes.jsonl")
if os.path.exists(path):
    probes = [json.loads(l) for l in open(path) if l.strip()]
log = open(os.path.join(work, "tests.log")).read()
result = re.findall(r"test result: .*", log)
soak = json.load(open(os.path.join(work, "soak.json"))) if os.path.exists(os.path.join(work, "soak.json")) else None

cpu = "?"
for line in open("/proc/cpuinfo"):
    if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip()
        break
mem_gib = int(open("/proc/meminfo").readline().split()[1]) / 1048576
commit = sh("git", "rev-parse", "--short", "HEAD")
dirty = " (with uncommitted changes to the server)" if sh("git", "status", "--porcelain", "--untracked-files=no", "--", "server", "proto", "scripts") else ""

def md(s):
    return str(s).replace("|", "\\|").replace("\n", " ")

out = []
p = out.append
p("# Reliability: hostile input, faults and abuse")
p("")
p(f"Written by `{command}` (do not edit by hand). It runs `cargo test -p pushlab-server --test hostile`")
p("with `PUSHLAB_HOSTILE_LOG` set, so every probe below is one the tests made and checked, then")
p(f"`scripts/soak.sh --minutes {soak['minutes'] if soak else '?'}` against a release server.")
if not soak or float(soak['minutes']) < 10:
    p("That is a short soak; `scripts/reliability.sh --soak-minutes 10` runs the full ten minutes.")
p("")
p("| | |")
p("|---|---|")
p(f"| machine | {md(platform.node())}: {md(cpu)}, {os.cpu_count()} cores, {mem_gib:.1f} GiB, {md(sh('uname', '-sr'))} |")
p(f"| toolchain | {md(sh('rustc', '--version'))} |")
p(f"| commit | {commit}{dirty} |")
p(f"| date | {sh('date', '-u', '+%Y-%m-%d %H:%M UTC')} |")
p(f"| hostile tests | {md('; '.join(result)) or 'no result'} ({tests_s} s, exit {tests_exit}) |")
if soak:
    c = soak["client"]
    p(f"| soak | {soak['minutes']:.0f} min, {'PASS' if soak['pass'] else 'FAIL'} (exit {soak_exit}) |")
p("")

lost_faults = [x for x in probes if x["class"] == "fault"]
fuzz_inputs = sum(int(n) for x in probes if x["class"] == "fuzz" for n in re.findall(r": (\d+) inputs", x["attack"]))
p("## Summary")
p("")
p(f"- {len([x for x in probes if x['class'] not in ('fault', 'fuzz')])} bad inputs and abuses tried by hand-written probes, "
  f"{fuzz_inputs} generated ones thrown at a live socket; "
  "no panic, every one answered or cut, `/healthz` answering after each batch.")
p(f"- {len(lost_faults)} faults survived; messages lost in them: **0** (a test fails on any loss).")
if soak:
    c = soak["client"]
    mib = lambda b: f"{b / 1048576:.1f} MiB"
    p(f"- Soak: {c['published']} messages published, {c['messages_received']} received by {c['subscribers']} churning subscribers over "
      f"{c['sessions']} sessions; lost **{c['lost']}**, duplicated {c['duplicates']}. Server RSS {mib(soak['rss_start_bytes'])} at the start, "
      f"{mib(soak['rss_end_bytes'])} at the end (bound {mib(soak['rss_bound_bytes'])}).")
p("")

CLASSES = [
    ("auth", "Publish token (`--publish-token`)"),
    ("origin", "Origins and CORS (`--allowed-origins`, default same-origin)"),
    ("head", "Request heads (`--max-header-bytes`, `--max-headers`, hyper's parser)"),
    ("cursor", "Cursors and parameters"),
    ("topic", "Topic names"),
    ("method", "Methods"),
    ("path", "Paths"),
    ("body", "Publish bodies (`--max-message-bytes`)"),
    ("ws", "WebSocket"),
    ("slow", "Slow and silent clients (`--header-read-timeout` 1 s in the tests, `--idle-timeout`)"),
    ("bounds", "Connection and rate bounds (`--max-connections-per-ip`, `--publish-rate`)"),
]
p("## Bad inputs, by class, and the server's answer")
p("")
p("Answers are `status reason` as sent (the reason is the JSON body's `error`). Each refusal is")
p("also counted in `/metrics` as `pushlab_rejected_total{reason=...}`; the tests check the count.")
p("")
for cls, title in CLASSES:
    rows = [x for x in probes if x["class"] == cls]
    if not rows:
        continue
    p(f"### {title}")
    p("")
    p("| input | answer |")
    p("|---|---|")
    seen = set()
    for x in rows:
        key = (x["attack"], x["answer"])
        if key in seen:
            continue
        seen.add(key)
        p(f"| {md(x['attack'])} | {md(x['answer'])} |")
    p("")

p("## Faults survived")
p("")
p("| fault | outcome |")
p("|---|---|")
for x in lost_faults:
    p(f"| {md(x['attack'])} | {md(x['answer'])} |")
p("")
p("## Fuzz smoke (live socket)")
p("")
p("Generated inputs from a fixed seed (`PUSHLAB_FUZZ_SEED`, `PUSHLAB_FUZZ_CASES` change it), sent on")
p("fresh connections, 50 at a time; the answer's status, or a close. Parsers are also covered by")
p("property tests (proptest) in `server/tests/hostile/props.rs`: query and cursor parsing,")
p("`Last-Event-ID`, topic names, the SSE parser, poll batches, NDJSON lines, chunked coding,")
p("WebSocket frames: no panic on any input, and round trips where an encoder exists.")
p("")
p("| inputs | answers |")
p("|---|---|")
for x in probes:
    if x["class"] == "fuzz":
        p(f"| {md(x['attack'])} | {md(x['answer'])} |")
p("")
if soak:
    c = soak["client"]
    mib = lambda b: f"{b / 1048576:.1f}"
    p("## Soak")
    p("")
    p(f"`scripts/soak.sh --minutes {soak['minutes']:g}`: a release `pushlab-server --tick-rate 5` on {soak['server']};")
    p("30 subscribers (6 per transport) reconnecting every 0.2-4 s, half of the time with RST and")
    p("often mid-message, each resuming from its own cursor; a publisher at "
      f"{c['publish_rate_per_s']:g} msg/s on keep-alive connections renewed every 500 publishes; "
      "10 abusive connections a second (silent, half a head, an unfinished upgrade, a short body, TLS bytes).")
    p("")
    p("| figure | value |")
    p("|---|---|")
    p(f"| RSS idle, before the soak | {mib(soak['rss_idle_bytes'])} MiB |")
    p(f"| RSS at the start (after warm-up) | {mib(soak['rss_start_bytes'])} MiB |")
    p(f"| RSS at the end | {mib(soak['rss_end_bytes'])} MiB |")
    p(f"| RSS max seen | {mib(soak['rss_max_bytes'])} MiB |")
    p(f"| bound (start + max(16 MiB, 25 %)) | {mib(soak['rss_bound_bytes'])} MiB |")
    p(f"| RSS samples (s: MiB) | {', '.join(f'{t}: {mib(r)}' for t, r in soak['rss_samples'])} |")
    p(f"| messages published (seqs {c['first_seq']}..{c['last_seq']}) | {c['published']} (refused {c['publish_refused']}) |")
    p(f"| subscriber sessions | {c['sessions']} ({c['session_errors']} refused) |")
    p(f"| messages received | {c['messages_received']} |")
    p(f"| lost / duplicated / gap notices | {c['lost']} / {c['duplicates']} / {c['gap_notices']} |")
    p(f"| lost by transport | {', '.join(f'{k} {v}' for k, v in c['lost_by_transport'].items())} |")
    p(f"| abusive connections | {c['abusive_connections']} |")
    p(f"| connections open after | {soak['open_connections_after']} |")
    p(f"| runtime tasks idle -> after | {soak['tasks_idle']} -> {soak['tasks_after']} |")
    p("")

p("## Limits known and accepted")
p("")
p("- Heads hyper itself refuses (not HTTP, a header line without a colon, a bad content-length,")
p("  a head past its 4x buffer) get hyper's own status with an empty body, then a close: the")
p("  router never sees them, so it cannot add a JSON reason. They are counted all the same.")
p("- A request with both `content-length` and `transfer-encoding: chunked` is read as chunked")
p("  (RFC 9112 allows it; the server is not a proxy, so there is nothing to smuggle past).")
p("- Retained memory is bounded in bytes across all topics by `--max-retained-bytes` (default")
p("  256 MiB; the oldest messages are evicted past it, with gap notices), beside the counts")
p("  `--max-topics` and `--history`.")
p("- The publish rate is per connection: many connections from one address are bounded by")
p("  `--max-connections-per-ip` times the rate.")
print("\n".join(out))
EOF
echo "== wrote results/RELIABILITY.md (tests exit $TESTS_EXIT, soak exit $SOAK_EXIT)"
[ "$TESTS_EXIT" -eq 0 ] && [ "$SOAK_EXIT" -eq 0 ]
