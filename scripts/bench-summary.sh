#!/usr/bin/env bash
# Turns criterion's output (target/criterion/**/new/estimates.json, median point estimates)
# into results/bench.md: a header with the machine, versions, commit, date and command, then
# one table per group (encode, fanout, e2e) with each bench's median and its ratio to the
# floor (e2e) or to the fastest comparable bench (same message size / same subscriber count).
#
#   scripts/bench-summary.sh                 summarize the last `cargo bench` (runs nothing)
#   scripts/bench-summary.sh --run [ARGS]    run `cargo bench [ARGS]` first, then summarize
#                                            only what that run measured
#   OUT=path scripts/bench-summary.sh        write somewhere else than results/bench.md
set -euo pipefail
cd "$(dirname "$0")/.."

out="${OUT:-results/bench.md}"
run=0
if [[ "${1:-}" == "--run" ]]; then
    run=1
    shift
fi
bench_args=("$@")

started_epoch=0
elapsed_s=""
command_line="cargo bench (run before this summary; scripts/bench-summary.sh read its output)"
load_before="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
if [[ $run == 1 ]]; then
    command_line="scripts/bench-summary.sh --run${bench_args[*]:+ ${bench_args[*]}}  (= cargo bench${bench_args[*]:+ ${bench_args[*]}}, then this summary)"
    started_epoch="$(date +%s)"
    # Criterion's own data stays in target/criterion; its log goes beside it.
    mkdir -p target/criterion
    cargo bench "${bench_args[@]}" 2>&1 | tee target/criterion/last-run.log
    elapsed_s="$(($(date +%s) - started_epoch))"
fi
load_after="$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"

cpu="$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//' || true)"
[[ -n "$cpu" ]] || cpu="$(uname -m)"
criterion_version="$(awk '/^name = "criterion"$/ {getline; gsub(/[^0-9.]/, ""); print; exit}' Cargo.lock 2>/dev/null || true)"
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [[ -n "$(git status --porcelain -- benches server proto Cargo.toml 2>/dev/null)" ]]; then
    commit="$commit (benches, server, proto or Cargo.toml had uncommitted changes)"
fi

mkdir -p "$(dirname "$out")"
CPU="$cpu" CORES="$(nproc)" KERNEL="$(uname -sr)" RUSTC="$(rustc --version)" \
CRITERION="${criterion_version:-?}" COMMIT="$commit" COMMAND="$command_line" \
STARTED="$started_epoch" ELAPSED="$elapsed_s" LOAD_BEFORE="$load_before" LOAD_AFTER="$load_after" \
OUT="$out" python3 - <<'PY'
import datetime
import json
import os
import re
from pathlib import Path

root = Path("target/criterion")
started = int(os.environ["STARTED"])
env = os.environ

TRANSPORT_ORDER = ["floor", "message", "poll", "longpoll", "sse", "stream", "ws"]
GROUP_ORDER = ["encode", "fanout", "e2e", "e2e_cpu"]


def fmt_time(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}" if ns / scale < 100 else f"{ns / scale:.0f} {unit}"
    return f"{ns:.3g} ns"


def fmt_rate(per_s, unit):
    for prefix, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if per_s >= scale:
            return f"{per_s / scale:.3g} {prefix}{unit}/s"
    return f"{per_s:.3g} {unit}/s"


benches = []
for est in root.glob("*/*/new/estimates.json"):
    if started and est.stat().st_mtime < started:
        continue  # left over from an earlier run
    meta_path = est.parent / "benchmark.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    e = json.loads(est.read_text())
    name = meta.get("function_id") or est.parent.parent.name
    group = meta.get("group_id") or est.parent.parent.parent.name
    m = e["median"]
    p10 = m["point_estimate"]
    sample_path = est.parent / "sample.json"
    if sample_path.exists():
        sample = json.loads(sample_path.read_text())
        per_iter = sorted(t / i for t, i in zip(sample["times"], sample["iters"]) if i)
        if per_iter:
            p10 = per_iter[int(0.1 * (len(per_iter) - 1))]
    benches.append({
        "group": group,
        "name": name,
        "median_ns": m["point_estimate"],
        "lo_ns": m["confidence_interval"]["lower_bound"],
        "hi_ns": m["confidence_interval"]["upper_bound"],
        "p10_ns": p10,
        "throughput": meta.get("throughput") or {},
        "mtime": est.stat().st_mtime,
    })

if not benches:
    raise SystemExit("no criterion estimates found under target/criterion: run `cargo bench` "
                     "or pass --run")


def transport_of(name):
    if "_floor_" in name:
        return 0
    for i, t in enumerate(TRANSPORT_ORDER):
        if name == t or name.startswith(t + "_"):
            return i
    return len(TRANSPORT_ORDER)


def num(pattern, name, default=0):
    m = re.search(pattern, name)
    return int(m.group(1)) if m else default


def sort_key(b):
    n = b["name"]
    return (num(r"_(\d+)b$", n), num(r"_c(\d+)_", n), transport_of(n), num(r"batch(\d+)", n), n)


lines = []
when = datetime.datetime.fromtimestamp(max(b["mtime"] for b in benches), datetime.timezone.utc)
lines += [
    "# pushlab benchmarks",
    "",
    "Written by `scripts/bench-summary.sh` from criterion's output (median of each bench, with "
    "its 95% confidence interval). Regenerate with `scripts/bench-summary.sh --run`.",
    "",
    f"- **Command:** `{env['COMMAND']}`",
    f"- **Machine:** {env['CPU']}, {env['CORES']} cores, {env['KERNEL']}",
    f"- **Toolchain:** {env['RUSTC']}, criterion {env['CRITERION']}",
    f"- **Commit:** {env['COMMIT']}",
    f"- **Date:** {when:%Y-%m-%d %H:%M} UTC (last estimate written)",
]
if env.get("ELAPSED"):
    secs = int(env["ELAPSED"])
    lines.append(f"- **Whole `cargo bench`:** {secs // 60} min {secs % 60} s "
                 "(including the build)")
lines += [
    f"- **Load average** (1, 5, 15 min) before: {env['LOAD_BEFORE']}; after: {env['LOAD_AFTER']}.",
    "",
    "The machine is shared (other work ran beside this run), so absolute figures are noisy and "
    "the wall-clock ones most. Quote ratios, which were measured side by side in one run; every "
    "bench but `e2e` is timed in the bench thread's CPU time, which leaves out the time the "
    "machine gave to other processes but not their effect on caches. `p10` is the fastest tenth "
    "of criterion's samples (per iteration): the figure least touched by that interference, "
    "and its ratio column the steadier one.",
    "",
]


def ratio(x, base):
    return f"{x / base:.2f}" if base else "?"


def timing(b):
    return (f"{fmt_time(b['median_ns'])} ({fmt_time(b['lo_ns'])} – {fmt_time(b['hi_ns'])}) | "
            f"{fmt_time(b['p10_ns'])}")


groups = sorted({b["group"] for b in benches},
                key=lambda g: (GROUP_ORDER.index(g) if g in GROUP_ORDER else 99, g))
for group in groups:
    rows = sorted((b for b in benches if b["group"] == group), key=sort_key)
    lines.append(f"## {group}")
    lines.append("")
    if group == "encode":
        lines += [
            "One message into each transport's bytes (message JSON encoding included; "
            "`message_encode` is that shared part alone; long poll has poll's body). Ratios: "
            "time per message over the fastest transport framing of the same size.",
            "",
            "| bench | median (95% CI) | p10 | per message | bytes out | throughput "
            "| × fastest | × fastest (p10) |",
            "|---|---|---|---|---:|---:|---:|---:|",
        ]

        def batch(b):
            return max(1, num(r"batch(\d+)", b["name"], 1))

        fastest = {}
        for b in rows:
            if b["name"].startswith("message_"):
                continue
            size = num(r"_(\d+)b$", b["name"])
            med, p10 = fastest.get(size, (float("inf"), float("inf")))
            fastest[size] = (min(med, b["median_ns"] / batch(b)), min(p10, b["p10_ns"] / batch(b)))
        for b in rows:
            n = b["name"]
            size = num(r"_(\d+)b$", n)
            out_bytes = b["throughput"].get("Bytes") or b["throughput"].get("BytesDecimal") or 0
            tput = fmt_rate(out_bytes / (b["median_ns"] / 1e9), "B") if out_bytes else ""
            if n.startswith("message_"):
                r1 = r2 = ""
            else:
                r1 = ratio(b["median_ns"] / batch(b), fastest[size][0])
                r2 = ratio(b["p10_ns"] / batch(b), fastest[size][1])
            lines.append(f"| `{n}` | {timing(b)} | {fmt_time(b['median_ns'] / batch(b))} | "
                         f"{out_bytes} | {tput} | {r1} | {r2} |")
    elif group == "fanout":
        lines += [
            "One publish delivered to c subscribers through the real server stack (hyper, "
            "router, transport, feed) into in-memory sockets on one thread; poll and long poll "
            "include each subscriber's request. Beside them, the fan-out floor: the same "
            "message bytes, encoded once per publish, written once to each of c sockets by a "
            "plain loop (no HTTP, no WebSocket library): `fanout_floor_mem` into the "
            "transports' own in-memory sockets (like with like), `fanout_floor_tcp` into "
            "127.0.0.1 TCP pairs drained by readers on another thread (up to c = 1,000: "
            "10,000 pairs would be 20,000 fds, the per-process cap). `{transport}_fanout_tcp` "
            "is SSE, stream or WebSocket over such TCP pairs: set it beside the TCP floor "
            "(both pay the kernel's loopback send; the in-memory rows beside the in-memory "
            "floor). Ratios: time per delivered message over the floor's at the same c "
            "(transport / floor).",
            "",
            "| bench | median per publish (95% CI) | p10 | per delivered message | delivered/s "
            "| × mem floor | × mem floor (p10) | × tcp floor | × fastest transport |",
            "|---|---|---|---|---:|---:|---:|---:|---:|",
        ]

        def subs(b):
            return max(1, b["throughput"].get("Elements", 1))

        def per(b, key="median_ns"):
            return b[key] / subs(b)

        floors = {}  # (kind, c) -> bench
        fastest = {}  # c -> fastest transport per delivered message (median)
        for b in rows:
            c = num(r"_c(\d+)_", b["name"])
            kind = re.match(r"fanout_floor_([a-z]+)_", b["name"])
            if kind:
                floors[(kind.group(1), c)] = b
            else:
                fastest[c] = min(fastest.get(c, float("inf")), per(b))
        for b in rows:
            c = num(r"_c(\d+)_", b["name"])
            mem, tcp = floors.get(("mem", c)), floors.get(("tcp", c))
            if "_fanout_tcp_" in b["name"]:
                mem = None  # like with like: a transport over TCP against the TCP floor only
            lines.append(
                f"| `{b['name']}` | {timing(b)} | {fmt_time(per(b))} | "
                f"{fmt_rate(1e9 / per(b), 'msg')} | "
                f"{ratio(per(b), per(mem) if mem else 0)} | "
                f"{ratio(per(b, 'p10_ns'), per(mem, 'p10_ns') if mem else 0)} | "
                f"{ratio(per(b), per(tcp) if tcp else 0)} | "
                f"{ratio(per(b), fastest.get(c, 0))} |")
    elif group in ("e2e", "e2e_cpu"):
        floor = next((b for b in rows if "_floor_" in b["name"]), None)
        what = ("wall-clock time (latency)" if group == "e2e" else
                "CPU time (client, server and the kernel's loopback work on their behalf, all "
                "on one thread): what a message costs, whatever else the machine runs")
        lines += [
            "Publish to receive of one message over 127.0.0.1 with a real client (server and "
            "client on one current-thread runtime), in " + what +
            ". The floor is a raw TCP ping-pong of the same message (one round trip). Poll is "
            "publish, then a poll request (two round trips); long poll is a held request "
            "completed by the publish.",
            "",
            "| bench | median (95% CI) | p10 | × floor | × floor (p10) | messages/s |",
            "|---|---|---|---:|---:|---:|",
        ]
        for b in rows:
            lines.append(
                f"| `{b['name']}` | {timing(b)} | "
                f"{ratio(b['median_ns'], floor['median_ns'] if floor else 0)} | "
                f"{ratio(b['p10_ns'], floor['p10_ns'] if floor else 0)} | "
                f"{fmt_rate(1e9 / b['median_ns'], 'msg')} |")
    else:
        fastest = min(b["median_ns"] for b in rows)
        lines += ["| bench | median (95% CI) | p10 | × fastest |", "|---|---|---|---:|"]
        for b in rows:
            lines.append(f"| `{b['name']}` | {timing(b)} | {ratio(b['median_ns'], fastest)} |")
    lines.append("")

Path(env["OUT"]).write_text("\n".join(lines))
print(f"wrote {env['OUT']} ({len(benches)} benches)")
PY
